"""NAS-Bench-101 data file (`nasbench_only108.tfrecord`) reader and writer, no TensorFlow.

TFRecord framing per record: uint64 LE length, uint32 LE masked CRC32C of those 8 bytes,
data, uint32 LE masked CRC32C of the data. NB101 data = UTF-8 JSON list
`[module_hash, epochs, adjacency '0110..' (row-major), 'op,op,..', base64(ModelMetrics)]`.
ModelMetrics is a proto2 message; its classes are built at runtime from a
FileDescriptorProto below (same field numbers and types as nasbench/lib/model_metrics.proto),
so the protobuf package does the wire decoding.
"""
from __future__ import annotations

import base64
import io
import json
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

import google_crc32c
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from benchmark.errors import BenchmarkFileError

_MASK_DELTA = 0xA282EAD8
_U64, _U32 = struct.Struct('<Q'), struct.Struct('<I')


class CorruptRecordError(BenchmarkFileError):
    """A TFRecord frame fails its CRC, is truncated or holds an undecodable record."""

    def __init__(self, path: str, offset: int, reason: str):
        super().__init__(f'{path}: corrupt record at byte offset {offset}: {reason}')
        self.path, self.offset = path, offset


def masked_crc32c(data: bytes) -> int:
    c = google_crc32c.value(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _build_classes():
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name='nas_suite/model_metrics.proto', package='nasbench', syntax='proto2')
    ed = fdp.message_type.add(name='EvaluationData')
    for num, name in enumerate(['current_epoch', 'training_time', 'train_accuracy',
                                'validation_accuracy', 'test_accuracy'], 1):
        ed.field.add(name=name, number=num, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    ed.field.add(name='checkpoint_path', number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    mm = fdp.message_type.add(name='ModelMetrics')
    mm.field.add(name='evaluation_data', number=1, type=F.TYPE_MESSAGE,
                 label=F.LABEL_REPEATED, type_name='.nasbench.EvaluationData')
    mm.field.add(name='trainable_parameters', number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    mm.field.add(name='total_time', number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()   # private pool: no clash with a real nasbench import
    pool.Add(fdp)
    get = message_factory.GetMessageClass
    return (get(pool.FindMessageTypeByName('nasbench.ModelMetrics')),
            get(pool.FindMessageTypeByName('nasbench.EvaluationData')))


ModelMetrics, EvaluationData = _build_classes()


# ---------------------------------------------------------------- framing
def iter_frames(path: str, buffer_size: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """Yield (byte offset, data) per record, checking both CRCs; constant memory."""
    with open(path, 'rb', buffering=buffer_size) as f:
        yield from _iter_frames(f, str(path))


def _iter_frames(f: BinaryIO, path: str) -> Iterator[tuple[int, bytes]]:
    offset = 0
    read = f.read
    while True:
        header = read(12)
        if not header:
            return
        if len(header) < 12:
            raise CorruptRecordError(path, offset, f'truncated header ({len(header)} of 12 bytes)')
        length_bytes = header[:8]
        if _U32.unpack_from(header, 8)[0] != masked_crc32c(length_bytes):
            raise CorruptRecordError(path, offset, 'length CRC mismatch')
        (length,) = _U64.unpack(length_bytes)
        body = read(length + 4)
        if len(body) < length + 4:
            raise CorruptRecordError(path, offset, f'truncated data ({len(body)} of {length + 4} bytes)')
        data = body[:length]
        if _U32.unpack_from(body, length)[0] != masked_crc32c(data):
            raise CorruptRecordError(path, offset, 'data CRC mismatch')
        yield offset, data
        offset += 16 + length


def frame(data: bytes) -> bytes:
    length = _U64.pack(len(data))
    return (length + _U32.pack(masked_crc32c(length)) + data + _U32.pack(masked_crc32c(data)))


def write_frames(path: str, records: Iterable[bytes]) -> int:
    n = 0
    with open(path, 'wb', buffering=1 << 20) as f:
        for data in records:
            f.write(frame(data))
            n += 1
    return n


# ---------------------------------------------------------------- NB101 records
@dataclass
class NB101Record:
    module_hash: str
    epochs: int
    matrix: np.ndarray
    ops: list[str]
    metrics: 'ModelMetrics'    # .evaluation_data[i].{validation,test}_accuracy, ...

    @property
    def final(self):
        """evaluation_data[2]: the evaluation at the end of training."""
        return self.metrics.evaluation_data[2]


def decode_record(data: bytes) -> NB101Record:
    module_hash, epochs, adjacency, ops, raw = json.loads(data)
    dim = int(round(len(adjacency) ** 0.5))
    if dim * dim != len(adjacency):
        raise ValueError(f'adjacency string of length {len(adjacency)} is not square')
    matrix = (np.frombuffer(adjacency.encode('ascii'), dtype=np.uint8) - ord('0')).reshape(dim, dim)
    metrics = ModelMetrics.FromString(base64.b64decode(raw, validate=True))
    return NB101Record(module_hash, int(epochs), matrix.astype(np.int8), ops.split(','), metrics)


def encode_record(module_hash: str, epochs: int, matrix, ops: list[str], metrics) -> bytes:
    adjacency = ''.join(str(int(x)) for x in np.asarray(matrix).ravel())
    raw = base64.b64encode(metrics.SerializeToString()).decode('ascii')
    return json.dumps([module_hash, int(epochs), adjacency, ','.join(ops), raw]).encode('utf-8')


def make_metrics(evaluations: list[dict], trainable_parameters: int, total_time: float):
    """Build a ModelMetrics from dicts of EvaluationData fields (for writers and tests)."""
    m = ModelMetrics(trainable_parameters=trainable_parameters, total_time=total_time)
    for e in evaluations:
        m.evaluation_data.add(**e)
    return m


def iter_nb101(path: str) -> Iterator[NB101Record]:
    """Lazily decode every record of an NB101 tfrecord file."""
    for offset, data in iter_frames(path):
        try:
            yield decode_record(data)
        except Exception as e:  # json, base64, protobuf or shape errors
            raise CorruptRecordError(str(path), offset, f'undecodable NB101 record: {e}') from e


def read_bytes_frames(buf: bytes, name: str = '<bytes>') -> Iterator[tuple[int, bytes]]:
    """Frames of an in-memory buffer (tests)."""
    return _iter_frames(io.BytesIO(buf), name)
