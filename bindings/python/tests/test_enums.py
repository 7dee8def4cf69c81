"""The binding's enums print their names and stay ints."""

from __future__ import annotations

import ctypes
import json
import pickle
import unittest

import zcfuse
from zcfuse import _library as L


class EnumTest(unittest.TestCase):
    def test_str_and_format_give_the_name(self) -> None:
        t = zcfuse.Transport.URING
        self.assertEqual(str(t), "Transport.URING")
        self.assertEqual(f"{t}", "Transport.URING")
        self.assertEqual("{}".format(t), "Transport.URING")
        self.assertEqual(f"{t:>16}", " Transport.URING")
        self.assertEqual(f"{t:d}", "1")
        self.assertEqual(f"{t:#x}", "0x1")
        self.assertEqual("%d" % t, "1")
        self.assertEqual(repr(t), "<Transport.URING: 1>")
        self.assertEqual(str(zcfuse.Opcode.WRITE), "Opcode.WRITE")
        self.assertEqual(str(zcfuse.Op.READ), "OpType.READ")
        self.assertEqual(str(zcfuse.Mode.POLL), "Mode.POLL")

    def test_still_ints(self) -> None:
        t = zcfuse.Transport.CLASSIC
        self.assertIsInstance(t, int)
        self.assertEqual(t, L.TRANSPORT_CLASSIC)
        self.assertEqual(t + 1, 3)
        self.assertEqual(json.dumps(t), "2")
        self.assertEqual((10, 20, 30)[zcfuse.Transport.URING], 20)
        self.assertEqual(ctypes.c_uint32(zcfuse.Opcode.WRITE).value, 16)
        self.assertEqual(zcfuse.Transport(1), zcfuse.Transport.URING)
        self.assertIs(pickle.loads(pickle.dumps(zcfuse.Opcode.READ)), zcfuse.Opcode.READ)
        self.assertEqual(
            [int(m) for m in zcfuse.OpType], [L.OP_READ, L.OP_WRITE, L.OP_FSYNC]
        )
        self.assertEqual([int(m) for m in zcfuse.Mode], [L.MODE_SLEEP, L.MODE_POLL])

    def test_opcodes_come_from_the_library(self) -> None:
        # No copy of the table in the binding: every member is the
        # library's name of its value, and every opcode it names is a member.
        self.assertEqual((zcfuse.Opcode.READ, zcfuse.Opcode.WRITE, zcfuse.Opcode.INIT), (15, 16, 26))
        self.assertEqual(zcfuse.Opcode.LOOKUP, 1)
        self.assertEqual(zcfuse.Opcode(52), zcfuse.Opcode.STATX)
        for op in zcfuse.Opcode:
            self.assertEqual(zcfuse.opcode_name(op), op.name)
            self.assertEqual(L.LIB.zcfuse_opcode_name(op).decode(), op.name)
        named = [op for op in range(1, zcfuse.STATS_OPCODES) if not zcfuse.opcode_name(op).startswith("OP_")]
        self.assertEqual(named, [int(m) for m in zcfuse.Opcode])
        self.assertGreaterEqual(len(named), 50)
        self.assertEqual(zcfuse.opcode_name(7), "OP_7")  # a hole in the kernel's numbering
        self.assertEqual(zcfuse.opcode_name(0), "OTHER")
        self.assertEqual(zcfuse.opcode_name(zcfuse.STATS_OPCODES), "OTHER")
        self.assertEqual(zcfuse.opcode_name(2**32 - 1), "OTHER")
        with self.assertRaises(ValueError):
            zcfuse.Opcode(7)
        self.assertEqual(zcfuse.Opcode["READ"], 15)
        self.assertEqual(zcfuse.Opcode.__module__, "zcfuse.server")

    def test_op_takes_plain_ints(self) -> None:
        op = zcfuse.Op(L.OP_WRITE, 3, b"x")
        self.assertIs(op.opcode, zcfuse.OpType.WRITE)
        self.assertIn("OpType.WRITE", repr(op))
        self.assertEqual(zcfuse.Op(99, 3).opcode, 99)  # unknown: left to the library


if __name__ == "__main__":
    unittest.main()
