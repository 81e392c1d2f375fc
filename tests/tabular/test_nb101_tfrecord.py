import base64
import json
import struct

import numpy as np
import pytest

from benchmark.errors import BenchmarkFileError
from benchmark.tabular import nb101_tfrecord as tfr
from benchmark.tabular.nb101_synthetic import write_synthetic


def test_crc32c_and_mask_known_values():
    # CRC-32C check value of the standard test vector.
    import google_crc32c
    assert google_crc32c.value(b'123456789') == 0xE3069283
    c = 0xE3069283
    assert tfr.masked_crc32c(b'123456789') == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32


def test_protobuf_wire_format_matches_field_numbers():
    # Hand-encoded proto2 bytes: field 2 varint, field 3 double, field 1 nested message
    # holding field 4 double and field 6 string.
    inner = b'\x21' + struct.pack('<d', 0.75) + b'\x32\x03abc'
    wire = b'\x0a' + bytes([len(inner)]) + inner + b'\x10\x96\x01' + b'\x19' + struct.pack('<d', 12.5)
    m = tfr.ModelMetrics.FromString(wire)
    assert m.trainable_parameters == 150 and m.total_time == 12.5
    assert m.evaluation_data[0].validation_accuracy == 0.75
    assert m.evaluation_data[0].checkpoint_path == 'abc'
    assert m.evaluation_data[0].test_accuracy == 0.0
    # ... and the runtime-built class serialises to the same bytes.
    assert m.SerializeToString() == wire


def test_frame_layout():
    f = tfr.frame(b'hello')
    assert f[:8] == struct.pack('<Q', 5)
    assert struct.unpack('<I', f[8:12])[0] == tfr.masked_crc32c(f[:8])
    assert f[12:17] == b'hello'
    assert struct.unpack('<I', f[17:])[0] == tfr.masked_crc32c(b'hello')


def test_roundtrip_records(tmp_path):
    path = tmp_path / 'x.tfrecord'
    facts = write_synthetic(str(path), 4, seed=1, true_hashes=True)
    recs = list(tfr.iter_nb101(str(path)))
    assert len(recs) == 12
    for r, f in zip(recs, facts):
        assert r.module_hash == f['hash'] and r.epochs == 108
        assert r.final.validation_accuracy == f['valid'] and r.final.test_accuracy == f['test']
        assert r.metrics.trainable_parameters == f['params']
        assert r.matrix.shape == (7, 7) and r.ops[0] == 'input' and r.ops[-1] == 'output'
        from spaces.nb101 import module_hash
        assert module_hash(r.matrix, r.ops) == r.module_hash
    # JSON layout of the official file
    (_, data), = list(tfr.read_bytes_frames(tfr.frame(tfr.encode_record(
        'ab' * 16, 108, np.eye(2, k=1, dtype=int), ['input', 'output'], tfr.make_metrics([], 7, 1.0)))))
    h, ep, adj, ops, raw = json.loads(data)
    assert (h, ep, adj, ops) == ('ab' * 16, 108, '0100', 'input,output')
    assert tfr.ModelMetrics.FromString(base64.b64decode(raw)).trainable_parameters == 7


@pytest.mark.parametrize('where', ['length', 'length_crc', 'data', 'data_crc'])
def test_flipped_byte_reports_offset(tmp_path, where):
    path = tmp_path / 'x.tfrecord'
    write_synthetic(str(path), 2, seed=0)
    buf = bytearray(path.read_bytes())
    offsets = [o for o, _ in tfr.read_bytes_frames(bytes(buf))]
    target = offsets[3]   # 4th record
    pos = target + {'length': 0, 'length_crc': 9, 'data': 40, 'data_crc': None}[where] \
        if where != 'data_crc' else offsets[4] - 2
    buf[pos] ^= 0x01
    path.write_bytes(bytes(buf))
    with pytest.raises(BenchmarkFileError, match=f'byte offset {target}\\b') as e:
        list(tfr.iter_nb101(str(path)))
    assert e.value.offset == target


def test_truncated_file(tmp_path):
    path = tmp_path / 'x.tfrecord'
    write_synthetic(str(path), 1, seed=0)
    buf = path.read_bytes()
    offsets = [o for o, _ in tfr.read_bytes_frames(buf)]
    path.write_bytes(buf[:-3])
    with pytest.raises(tfr.CorruptRecordError, match=f'offset {offsets[-1]}: truncated'):
        list(tfr.iter_nb101(str(path)))


def test_valid_crc_but_garbage_payload(tmp_path):
    path = tmp_path / 'x.tfrecord'
    good = tfr.encode_record('cd' * 16, 108, np.eye(2, k=1, dtype=int), ['input', 'output'],
                             tfr.make_metrics([], 1, 1.0))
    tfr.write_frames(str(path), [good, b'not json'])
    with pytest.raises(tfr.CorruptRecordError, match=f'offset {16 + len(good)}: undecodable'):
        list(tfr.iter_nb101(str(path)))


def test_lazy_iteration(tmp_path):
    # The first records are yielded before a corrupt tail is ever read.
    path = tmp_path / 'x.tfrecord'
    write_synthetic(str(path), 2, seed=0)
    buf = bytearray(path.read_bytes())
    buf[-1] ^= 0xFF
    path.write_bytes(bytes(buf))
    it = tfr.iter_nb101(str(path))
    assert next(it).epochs == 108
    with pytest.raises(tfr.CorruptRecordError):
        list(it)
