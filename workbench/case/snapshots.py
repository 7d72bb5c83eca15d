"""Published model snapshots: the index, a static safety check, and safe loading.

A snapshot never executes code. Opening a case inspects every snapshot file
*without unpickling it*: the pickle inside a ``.pt`` is scanned opcode by opcode
(``pickletools``) and refused when it imports anything a plain state_dict does
not need. Loading then uses ``torch.load(..., weights_only=True)`` as a second
guard. ``.safetensors`` files hold no code by design; their header is checked.
"""

from __future__ import annotations

import csv
import json
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workbench.errors import CaseError, SnapshotError
from workbench.windows import iso

__all__ = ["Snapshot", "inspect_snapshot_file", "load_state_dict", "read_snapshot_index"]

FORMATS = (".safetensors", ".pt", ".pth")
INDEX_COLUMNS = ("snapshot_id", "published_at", "file")
EXTRA = "\x00extra"  # where csv.DictReader puts the fields of a row beyond the header
SAVE_HINT = "save it with torch.save(model.state_dict(), path) or safetensors.torch.save_file(model.state_dict(), path)."

# Globals a torch.save(state_dict) pickle legitimately names.
_SAFE_MODULE_NAMES = {"collections": {"OrderedDict"}, "torch": {"Size", "device", "dtype"}}
_CODE_MODULES = {"os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "importlib", "socket",
                 "shutil", "runpy", "pty", "code", "codecs", "webbrowser", "pickle", "marshal", "types", "ctypes"}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One row of ``snapshots/index.csv``."""

    snapshot_id: str
    published_at: datetime
    path: Path
    stable: bool = False

    def to_dict(self) -> dict:
        return {"snapshot_id": self.snapshot_id, "published_at": iso(self.published_at),
                "file": self.path.name, "stable": self.stable}


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _is_safe_global(module: str, name: str) -> bool:
    if module == "torch._utils" and name.startswith("_rebuild_"):
        return True
    if module == "torch" and (name.endswith("Storage") or name in _SAFE_MODULE_NAMES["torch"] or name in _DTYPES):
        return True
    return name in _SAFE_MODULE_NAMES.get(module, set())


_DTYPES = {"float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool",
           "complex64", "complex128", "half", "float", "double", "long", "int", "short"}


def _pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle would import, read statically: nothing is executed."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []
    memo: dict[object, str] = {}  # keyed by the opcode's argument (an int for the PUT/GET family)
    pos = 0
    while pos < len(data):  # legacy .pt files are several pickles in a row
        last: tuple[pickletools.OpcodeInfo, int] | None = None
        for op, arg, at in pickletools.genops(data[pos:]):
            assert at is not None  # genops reports every position when it reads from bytes
            last = (op, at)
            if op.name in ("GLOBAL", "INST"):
                module, _, name = str(arg).partition(" ")
                found.append((module, name))
            elif op.name == "STACK_GLOBAL":
                found.append((strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?"))
            elif (isinstance(arg, str) and "UNICODE" in op.name) or op.name in ("SHORT_BINSTRING", "BINSTRING", "STRING"):
                strings.append(str(arg))
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[arg] = strings[-1]
            elif op.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(got := memo.get(arg), str):
                strings.append(got)
            if op.name == "STOP":
                break
        if last is None or last[0].name != "STOP":
            break
        pos += last[1] + 1
        if data[pos:pos + 1] != b"\x80":  # the next part is raw tensor bytes, not a pickle
            break
    return found


def _check_pickle(path: Path, data: bytes) -> None:
    try:
        names = _pickle_globals(data)
    except Exception as exc:  # a truncated or foreign file: refuse it, never unpickle it
        raise SnapshotError(path, f"unreadable: not a PyTorch pickle ({exc}).", SAVE_HINT) from None
    for module, name in names:
        if _is_safe_global(module, name):
            continue
        root = module.split(".")[0]
        if root in _CODE_MODULES or name in ("eval", "exec", "getattr", "__import__", "system", "apply"):
            raise SnapshotError(path, f"refused: loading it would execute code ({module}.{name}); nothing was run.",
                                "only load snapshots you trust, and re-export them as plain state_dicts: " + SAVE_HINT)
        raise SnapshotError(path, f"not a state_dict: it holds a pickled object ({module}.{name}).", SAVE_HINT)


def inspect_snapshot_file(path: Path) -> None:
    """Raise :class:`SnapshotError` unless ``path`` looks like a safe state_dict file."""
    if not path.is_file():
        raise SnapshotError(path, "snapshot file not found.", "fix the 'file' column of snapshots/index.csv (relative to snapshots/).")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SnapshotError(path, f"unsupported snapshot format '{suffix}'.", SAVE_HINT)
    if suffix == ".safetensors":
        with path.open("rb") as fh:
            head = fh.read(8)
            size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            ok = 0 < size <= path.stat().st_size - 8
            try:
                header = json.loads(fh.read(size)) if ok else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                header = None
        if not isinstance(header, dict) or not any(k != "__metadata__" for k in header):
            raise SnapshotError(path, "unreadable: not a safetensors file (bad header).", SAVE_HINT)
        return
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                pickles = [n for n in zf.namelist() if n.endswith("data.pkl")]
                if not pickles:
                    raise SnapshotError(path, "unreadable: a zip without data.pkl, not a torch.save file.", SAVE_HINT)
                data = zf.read(pickles[0])
        except zipfile.BadZipFile as exc:
            raise SnapshotError(path, f"unreadable: {exc}.", SAVE_HINT) from None
    else:
        data = path.read_bytes()
    _check_pickle(path, data)


def load_state_dict(path: Path) -> dict:
    """Load a state_dict of CPU tensors; never executes code (``weights_only=True``)."""
    inspect_snapshot_file(path)
    import torch  # heavy: only when a snapshot is really needed

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many kinds; the user needs one message
        raise SnapshotError(path, f"unreadable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", SAVE_HINT) from None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise SnapshotError(path, f"not a state_dict: found {type(state).__name__}, expected a dict of name -> tensor.", SAVE_HINT)
    return dict(state)


def read_snapshot_index(root: Path, check_files: bool = True) -> tuple[Snapshot, ...]:
    """Read ``snapshots/index.csv``, check ids, times and (with ``check_files``) files; sorted by ``published_at``."""
    path = root / "snapshots" / "index.csv"
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, restkey=EXTRA)
            header = [h.strip() for h in reader.fieldnames or []]
            rows = list(reader)
    except csv.Error as exc:
        raise CaseError(path, f"not readable as CSV: {exc}.", "write it as CSV with a header row.") from None
    except UnicodeDecodeError:
        raise CaseError(path, "not a UTF-8 text CSV.", "write it as CSV with a header row.") from None
    missing = [c for c in INDEX_COLUMNS if c not in header]
    if missing:
        raise CaseError(path, f"missing column(s) {missing}; found {header}.",
                        "the header must be: snapshot_id,published_at,file[,stable]")
    if not rows:
        raise CaseError(path, "no snapshots listed.", "add one row per published snapshot, or remove snapshots/.")
    seen: set[str] = set()
    out = []
    for line, raw in enumerate(rows, start=2):
        if raw.get(EXTRA):
            raise CaseError(path, f"line {line}: more fields than the header ({len(header)}): {raw[EXTRA]}.",
                            "quote a value that holds a comma, or remove the extra field.")
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str) or v is None}
        sid = row["snapshot_id"]
        if not sid:
            raise CaseError(path, f"line {line}: empty snapshot_id.", "give every snapshot a unique id.")
        if sid in seen:
            raise CaseError(path, f"line {line}: duplicate snapshot_id '{sid}'.",
                            "snapshot ids must be unique; rename or remove the repeated row.")
        seen.add(sid)
        try:
            published = _parse_time(row["published_at"])
        except ValueError:
            raise CaseError(path, f"line {line}: published_at {row['published_at']!r} is not a timestamp.",
                            "use ISO 8601, e.g. 2026-11-20T14:00:00Z.") from None
        flag = row.get("stable", "").lower()
        if flag not in ("", "true", "1", "yes", "false", "0", "no"):  # "maybe" read as false, silently
            raise CaseError(path, f"line {line}: stable {row.get('stable')!r} is neither true nor false.",
                            "write true (a snapshot known to be good), false, or leave it empty.")
        stable = flag in ("true", "1", "yes")
        file = (path.parent / row["file"]).resolve()
        if not row["file"] or Path(row["file"]).is_absolute() or not file.is_relative_to(path.parent.resolve()):
            raise CaseError(path, f"line {line}: file {row['file']!r} is not inside snapshots/.",
                            "give the snapshot's path relative to snapshots/, e.g. v7.safetensors; a snapshot is "
                            "never read from outside the case.")
        if check_files:
            inspect_snapshot_file(file)
        out.append(Snapshot(sid, published, file, stable))
    return tuple(sorted(out, key=lambda s: s.published_at))
