"""Sort the globals a pickle imports: dangerous, allowed by weights_only, or rejected by it.

DANGEROUS lists callables that run commands, evaluate code, import modules,
touch files or reach attributes by name. A pickle that imports one is
rejected before torch.load is called. The list cannot be complete, which is
why a file that passes it still loads only through torch's weights-only
unpickler. WEIGHTS_ONLY mirrors the default allowlist in
torch/_weights_only_unpickler.py (read in torch 2.14). Other torch internals
are left for torch.load to decide. Everything else (nn.Module classes, numpy
objects, your own classes) is a global that weights_only rejects.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lockstep.doctor.diagnosis import Diagnosis, broken
from lockstep.doctor.pickles import Call, Global, PersistentId, PickleScan

# Whole modules: anything imported from them can run code or commands.
_DANGEROUS_MODULE_NAMES = """
    os posix nt subprocess _posixsubprocess sys pty shutil socket ctypes signal platform
    importlib runpy code codeop pickle _pickle marshal types inspect pydoc pdb bdb timeit
    webbrowser multiprocessing asyncio threading _thread commands popen2
"""
DANGEROUS_MODULES = frozenset(_DANGEROUS_MODULE_NAMES.split())
DANGEROUS_NAMES = frozenset(
    {
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.__import__",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "builtins.open",
        "builtins.breakpoint",
        "builtins.input",
        "builtins.exit",
        "builtins.quit",
        "io.open",
        "_io.open",
        "io.FileIO",
        "_io.FileIO",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.call",
        "functools.reduce",
        "numpy.load",
        "numpy.testing._private.utils.runstring",
        "torch.load",
        "torch.serialization.load",
        "torch.jit.load",
    }
)
DANGEROUS_PREFIXES = ("torch.hub", "torch.package", "torch.utils.cpp_extension", "numpy.distutils")

WEIGHTS_ONLY = frozenset(
    {
        "collections.OrderedDict",
        "collections.Counter",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch._tensor._rebuild_from_type_v2",
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.set",
        "builtins.complex",
    }
)
# torch.float32, torch.FloatStorage, torch.cuda.HalfTensor, torch.per_tensor_affine and their kin.
_TORCH_TYPES = re.compile(
    r"^torch(\.cuda)?\.(\w+Storage|\w+Tensor|u?int\d+|float\w*|bfloat16|complex\d+|c?half|c?float|c?double"
    r"|bool|long|int|short|bits\w+|q\w+|per_\w+)$"
)
# Left to torch.load, which may accept them: private torch helpers outside the list above.
_TORCH_INTERNALS = ("torch._", "torch.serialization.", "torch.storage.", "torch.nn.parameter.")

# Ten is enough to recognise a pickled model, and keeps a message readable.
SHOWN_GLOBALS = 10


def is_dangerous(found: Global) -> bool:
    name = str(found)
    module_root = found.module.split(".")[0]
    return (
        not found.resolved
        or module_root in DANGEROUS_MODULES
        or name in DANGEROUS_NAMES
        or name.startswith(DANGEROUS_PREFIXES)
    )


def is_weights_only_allowed(found: Global) -> bool:
    name = str(found)
    return name in WEIGHTS_ONLY or name.startswith("torch._utils._rebuild_") or bool(_TORCH_TYPES.match(name))


def is_left_to_torch(found: Global) -> bool:
    """Return whether only torch itself can decide if weights_only accepts this global."""
    name = str(found)
    return name.startswith(_TORCH_INTERNALS) or (found.module == "torch" and "." not in found.name)


def dangerous(globals_: list[Global]) -> list[str]:
    return [str(found) for found in globals_ if is_dangerous(found)]


def rejected_by_weights_only(globals_: list[Global]) -> list[str]:
    """Return the globals that a default torch.load(weights_only=True) rejects.

    NOTE: globals added with torch.serialization.add_safe_globals are still listed here,
    because the doctor decides without torch; such files are reported as unsupported.
    """
    return [
        str(found)
        for found in globals_
        if not is_dangerous(found) and not is_weights_only_allowed(found) and not is_left_to_torch(found)
    ]


def shorten(names: list[str]) -> str:
    listed = ", ".join(names[:SHOWN_GLOBALS])
    more = len(names) - SHOWN_GLOBALS
    return f"{listed} and {more} more" if more > 0 else listed


def walk(root: Any, limit: int = 1_000_000) -> Iterator[Any]:
    """Yield every object reachable from root once, breadth first, up to `limit` objects."""
    seen: set[int] = set()
    queue = deque([root])
    while queue and len(seen) < limit:
        item = queue.popleft()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, dict):
            queue.extend(item.keys())
            queue.extend(item.values())
        elif isinstance(item, list | tuple):
            queue.extend(item)
        elif isinstance(item, Call):
            queue.extend((item.func, item.args, item.items, item.elements, item.state))
        elif isinstance(item, PersistentId):
            queue.append(item.value)


def _module_classes(scan: PickleScan) -> list[str]:
    """Return the classes of pickled nn.Module objects: instances whose state contains `_parameters`."""
    classes = {
        str(item.func)
        for item in walk(scan.root)
        if isinstance(item, Call) and isinstance(item.state, dict) and "_parameters" in item.state
    }
    classes.update(str(found) for found in scan.globals if found.module.startswith("torch.nn.modules."))
    return sorted(classes)


def judge_globals(path: Path, scan: PickleScan, described: str) -> Diagnosis | None:
    """Diagnose a pickle that imports dangerous callables, or objects that weights_only rejects; else return None.

    `described` names the container for the message, e.g. "a PyTorch checkpoint (zip format)".
    """
    every = [str(found) for found in scan.globals]
    danger = dangerous(scan.globals)
    if danger:
        return broken(
            path,
            "dangerous-pickle",
            f"{described} that would call {shorten(danger)} when unpickled",
            "the file was crafted to run code or commands on load, or saved from an object whose __reduce__ "
            "returns these callables. The doctor only read its opcodes, so nothing in it ran.",
            "do not open it with pickle or torch.load(weights_only=False). Delete it, and get the checkpoint "
            "again from a source you trust.",
            callables=danger,
            globals=every,
        )

    rejected = rejected_by_weights_only(scan.globals)
    if not rejected:
        return None
    modules = _module_classes(scan)
    if modules:
        return broken(
            path,
            "pickled-module",
            f"{described} that contains a whole pickled nn.Module ({shorten(modules)}), not a state dict",
            "the model object was saved with torch.save(model) instead of torch.save(model.state_dict()), so "
            "loading it needs the classes' code and weights_only=False",
            "where you trust the file and have its code, load it with weights_only=False and save "
            "model.state_dict() instead, as python -m train does",
            globals=rejected,
            modules=modules,
        )
    return broken(
        path,
        "unsupported-globals",
        f"{described} that references objects weights_only=True rejects: {shorten(rejected)}",
        "the checkpoint stores Python objects besides tensors and plain containers (numpy scalars or arrays, "
        "custom classes), and torch 2.6 and later reject them by default",
        "save only tensors and plain values (numpy values as .item() or torch.from_numpy, your own objects as "
        "dicts) and save again. Use weights_only=False only for files you trust.",
        globals=rejected,
    )
