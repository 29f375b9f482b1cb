"""Rebuild a pickle's object graph symbolically from its opcodes, without executing anything.

`pickletools.genops` decodes the opcodes, and a small stack machine replays
them with stand-ins. A GLOBAL becomes a `Global` (module and name, nothing
imported). REDUCE, NEWOBJ, INST and OBJ become a `Call`, which records the
callable and its arguments. The replay yields every callable the pickle
would import, the persistent ids that point at tensor storages, and the
root object's shape. That is enough to tell a state dict from a pickled
nn.Module or a hostile payload.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import pickletools
from dataclasses import dataclass, field
from typing import Any, BinaryIO

# Opcodes whose decoded argument is the value they push.
_CONSTANT_OPCODES = """
    INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT
    STRING BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8
    UNICODE SHORT_BINUNICODE BINUNICODE BINUNICODE8
"""
_CONSTANTS = frozenset(_CONSTANT_OPCODES.split())
_FIXED = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


class PickleError(ValueError):
    """The bytes are not a complete, well-formed pickle."""

    def __init__(self, message: str, offset: int, truncated: bool) -> None:
        super().__init__(message)
        self.offset = offset  # byte where reading stopped
        self.truncated = truncated  # True: the data ended before the pickle's STOP opcode


@dataclass(frozen=True)
class Global:
    """A callable or class the pickle imports by name (GLOBAL, STACK_GLOBAL, INST, EXT*)."""

    module: str
    name: str
    resolved: bool = True  # False when no name can be known before loading; `module` then says why

    def __str__(self) -> str:
        return f"{self.module}.{self.name}" if self.resolved else f"<{self.module}>"


COMPUTED_GLOBAL = Global("a global whose name is computed at load time", "", resolved=False)


@dataclass(eq=False)
class Call:
    """An object the pickle builds by calling `func` with `args`, with what SETITEMS, APPENDS and BUILD add."""

    func: Any
    args: Any
    items: dict = field(default_factory=dict)
    elements: list = field(default_factory=list)
    state: Any = None


@dataclass(frozen=True)
class PersistentId:
    """A reference resolved by the loader (torch: a tensor storage record)."""

    value: Any


@dataclass
class PickleScan:
    root: Any
    globals: list[Global]  # in order of first use, without repeats
    persistent_ids: list[Any]
    protocol: int
    end: int  # offset just past the STOP opcode


def _normalise(module: str, name: str) -> Global:
    # Protocol 0-2 pickles may use Python 2 names (__builtin__.eval); Unpickler maps them the same way.
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return Global(module, name)


class _Machine:
    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.globals: dict[Global, None] = {}
        self.persistent_ids: list[Any] = []
        self.protocol = 0

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def use_global(self, found: Global) -> Global:
        self.globals.setdefault(found, None)
        return found

    def add_items(self, target: Any, pairs: list[Any]) -> None:
        mapping = target.items if isinstance(target, Call) else target
        if not isinstance(mapping, dict):
            return
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            try:
                mapping[key] = value
            except TypeError:  # an unhashable stand-in as a key
                mapping[repr(key)] = value

    def add_elements(self, target: Any, values: list[Any]) -> None:
        if isinstance(target, Call):
            target.elements.extend(values)
        elif isinstance(target, list):
            target.extend(values)

    def step(self, name: str, arg: Any) -> None:
        if name in _CONSTANTS:
            self.push(arg)
        elif name in _FIXED:
            self.push(_FIXED[name])
        elif name == "PROTO":
            self.protocol = arg
        elif name in ("FRAME", "STOP"):
            pass
        elif name == "MARK":
            self.marks.append(self.stack)
            self.stack = []
        elif name == "POP":
            if self.stack:
                self.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            self.push(self.stack[-1])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[arg] = self.stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            self.push(self.memo[arg])
        elif name == "EMPTY_TUPLE":
            self.push(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            values = tuple(self.stack[-count:])
            del self.stack[-count:]
            self.push(values)
        elif name == "TUPLE":
            self.push(tuple(self.pop_mark()))
        elif name in ("EMPTY_LIST", "EMPTY_SET"):
            self.push([])
        elif name in ("LIST", "FROZENSET"):
            self.push(self.pop_mark())
        elif name in ("APPEND", "ADDITEMS", "APPENDS"):
            values = [self.pop()] if name == "APPEND" else self.pop_mark()
            self.add_elements(self.stack[-1], values)
        elif name == "EMPTY_DICT":
            self.push({})
        elif name == "DICT":
            mapping: dict = {}
            self.add_items(mapping, self.pop_mark())
            self.push(mapping)
        elif name in ("SETITEM", "SETITEMS"):
            pairs = self.stack[-2:] if name == "SETITEM" else None
            if pairs is not None:
                del self.stack[-2:]
            else:
                pairs = self.pop_mark()
            self.add_items(self.stack[-1], pairs)
        elif name == "GLOBAL":
            module, _, attribute = arg.partition(" ")
            self.push(self.use_global(_normalise(module, attribute)))
        elif name == "STACK_GLOBAL":
            attribute, module = self.pop(), self.pop()
            named = isinstance(module, str) and isinstance(attribute, str)
            self.push(self.use_global(_normalise(module, attribute) if named else COMPUTED_GLOBAL))
        elif name in ("EXT1", "EXT2", "EXT4"):
            known = copyreg._inverted_registry.get(arg)
            unknown = Global(f"extension code {arg}, which no copyreg registration names", "", resolved=False)
            found = Global(*known) if known else unknown
            self.push(self.use_global(found))
        elif name == "INST":
            module, _, attribute = arg.partition(" ")
            func = self.use_global(_normalise(module, attribute))
            self.push(Call(func, tuple(self.pop_mark())))
        elif name == "OBJ":
            items = self.pop_mark()
            self.push(Call(items[0], tuple(items[1:])))
        elif name in ("REDUCE", "NEWOBJ"):
            args = self.pop()
            self.push(Call(self.pop(), args))
        elif name == "NEWOBJ_EX":
            kwargs, args = self.pop(), self.pop()
            self.push(Call(self.pop(), (args, kwargs)))
        elif name == "BUILD":
            state = self.pop()
            if isinstance(self.stack[-1], Call):
                self.stack[-1].state = state
        elif name in ("PERSID", "BINPERSID"):
            reference = PersistentId(arg if name == "PERSID" else self.pop())
            self.persistent_ids.append(reference.value)
            self.push(reference)
        elif name == "NEXT_BUFFER":
            self.push(b"")  # an out-of-band buffer (protocol 5), whose contents are not in the file
        elif name == "READONLY_BUFFER":
            pass
        else:
            raise ValueError(f"opcode {name} is not supported by the doctor")


def scan_pickle(stream: BinaryIO, size: int) -> PickleScan:
    """Replay one pickle from the stream's current position up to its STOP opcode.

    `size` is the total length of the stream, used to tell a pickle that was cut
    off (the data ends first) from one that is malformed. Raise PickleError on either.
    """
    machine = _Machine()
    offset = stream.tell()
    try:
        for opcode, arg, position in pickletools.genops(stream):
            offset = position
            machine.step(opcode.name, arg)
        root = machine.pop()
    except (ValueError, IndexError, KeyError) as error:
        truncated = stream.tell() >= size
        reason = "the data ends before the pickle's STOP opcode" if truncated else str(error) or type(error).__name__
        raise PickleError(f"invalid pickle at byte {offset}: {reason}", offset, truncated) from None
    return PickleScan(root, list(machine.globals), machine.persistent_ids, machine.protocol, stream.tell())
