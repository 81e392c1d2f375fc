"""The DARTS CNN search space (Liu, Simonyan & Yang, ICLR 2019), as the authors' code defines it
(github quark0/darts, cnn/).

Public names: `network` (the evaluation network of a genotype), `parse_genotype`,
`format_genotype`, `canonical`, `GenotypeError`, `DARTS_V1`, `DARTS_V2`, `OPS`,
`count_parameters`.
"""
from __future__ import annotations

from spaces.darts_genotype import (CONCAT, DARTS_V1, DARTS_V2, EDGE_LIST, NUM_EDGES, PUBLISHED,  # noqa: F401
                                   STEPS, Genotype, GenotypeError, canonical, derive_cell,
                                   derive_genotype, format_genotype, parse_genotype, validate)
from spaces.darts_network import NetworkCIFAR, count_parameters, drop_path, network  # noqa: F401
from spaces.darts_ops import OPS, PARAM_FREE_OPS  # noqa: F401
