"""`spaces.nb101` is the NAS-Bench-101 cell module, which lives with the 1Shot1 spaces
(spaces/nb1shot1/nb101.py). This name is kept because users and scripts import it; it is the
same module object (not a copy), so a patch through either name is seen by both."""
import sys

from spaces.nb1shot1 import nb101 as _nb101

sys.modules[__name__] = _nb101
