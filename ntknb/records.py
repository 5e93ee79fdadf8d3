"""Recorded runs under ``notebooks/data/``: one home for reading, checking and appending them.

A recorded run is one JSON object a line of a JSON-lines file (``.jsonl``) under
:data:`ntknb.paths.DATA`, written by a script and read by a chapter, which tabulates it and
never reruns it. The kinds, each with its file and its reader:

* **search runs** (:class:`SearchRecord`): one training run of a setting of chapter 06's search for
  catastrophic overfitting (:func:`ntknb.chapters.ch06_overfitting.search.search_run`, appended by
  ``scripts/co_search.py``): :data:`SEARCH_FILE` (the CPU search) and :data:`GPU_SEARCH_FILE` (the
  CIFAR-10 runs on a GPU, ``scripts/gpu_cifar_search``, each with its ``device``; chapter 04 reads their
  PGD-AT runs, chapter 06 their FGSM-AT runs); read by :func:`load_search_records`;
* **seed checks**: a chapter run at base seeds never used before (:func:`seed_check_record`, appended
  by ``scripts/seed_check.py``) in :func:`seed_check_file`; read by :func:`load_seed_checks`;
* **ladder runs**: one run of a rung of chapter 06's pre-registered collapse ladder
  (``scripts/co_ladder.py``) in :data:`LADDER_FILE`; read by :func:`load_ladder_records`;
* **settings runs**: chapter 04's PGD-AT settings tried before its defaults (:data:`SETTINGS_FILE`,
  written by hand; fields :data:`SETTINGS_FIELDS`).

Every record read is checked (:func:`load_records`): a line that is not a JSON object, or a record
that lacks a field or holds a wrong one, raises :class:`RecordError` naming the file, the line and
the field. :func:`append_records` checks every new record first, then replaces the file atomically
(the old content and the new lines are written to a temporary file in the same folder, synced to
disk, and moved over the old file), under a lock on the folder, so a failed write leaves the file as
it was and two appends never lose one another.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import numbers
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import yaml

from ntknb import paths

__all__ = ["RecordError", "load_records", "append_records", "SEARCH_SETTINGS", "SEARCH_CURVES", "SEARCH_FILE",
           "GPU_SEARCH_FILE", "check_search_setting", "SearchRecord", "load_search_records", "append_search_records",
           "SEED_CHECK_SUFFIX", "seed_check_file", "seed_check_record", "check_seed_check", "unique_runs",
           "load_seed_checks", "LADDER_FILE", "LADDER_FIELDS", "load_ladder_records", "SETTINGS_FILE",
           "SETTINGS_FIELDS", "load_settings_records"]


class RecordError(ValueError):
    """A recorded run that cannot be read: the message names the file, the line and the field."""


# ------------------------------------------------------------------------------ JSON lines


def _check_fields(record: Mapping, fields: Sequence[str]) -> None:
    missing = [k for k in fields if k not in record]
    if missing:
        raise ValueError(f"field(s) {missing} missing; a record has {list(fields)}")


def load_records(path: str | os.PathLike, parse: Optional[Callable[[dict], Any]] = None, *,
                 fields: Sequence[str] = (), missing_ok: bool = False) -> list:
    """The records of the JSON-lines file ``path``: one JSON object a line, blank lines skipped.

    Args:
      path: the file (e.g. :data:`SEARCH_FILE`).
      parse: turns each record (a dict) into what is returned (e.g. :meth:`SearchRecord.from_json`),
        raising ``ValueError`` that names the field when the record is not of its kind; default: the dict.
      fields: fields every record must have.
      missing_ok: return ``[]`` when the file does not exist (no run recorded yet) instead of raising
        ``FileNotFoundError``.

    Raises:
      RecordError: a line is not a JSON object, lacks one of ``fields`` or is refused by ``parse``;
        the message names ``path``, the line (from 1) and the field.
    """
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a record must be a JSON object; got {type(record).__name__}")
                _check_fields(record, fields)
                out.append(parse(record) if parse is not None else record)
            except ValueError as err:  # json.JSONDecodeError is a ValueError
                raise RecordError(f"{path}, line {number}: {err}") from err
    return out


def _json_line(record: Any) -> str:
    obj = record.to_json() if hasattr(record, "to_json") else record
    if not isinstance(obj, Mapping):
        raise ValueError(f"a record must be a JSON object (a dict); got {type(obj).__name__}")
    return json.dumps(obj, allow_nan=False) + "\n"  # NaN and infinities are not JSON: refused


def append_records(path: str | os.PathLike, records: Iterable[Any], check: Optional[Callable[[dict], Any]] = None,
                   *, fields: Sequence[str] = ()) -> None:
    """Append ``records`` (dicts, or records with a ``to_json`` method such as :class:`SearchRecord`) to the
    JSON-lines file ``path`` (created with its folder when missing).

    Every record is checked before anything is written: it must be JSON without NaN or infinities, hold
    ``fields`` and pass ``check`` (a parser like :func:`load_records`' ``parse``), so the file only ever
    gets records its reader accepts. The file is then replaced atomically: the old content and the new
    lines go to a temporary file in the same folder, which is flushed, synced and moved over ``path``
    (``os.replace``); the folder is locked meanwhile (``fcntl.flock``), so concurrent appends queue.
    A failure at any point leaves ``path`` as it was and no temporary file behind.
    """
    path = Path(path)
    lines = []
    for i, rec in enumerate(records):
        try:
            line = _json_line(rec)
            obj = json.loads(line)
            _check_fields(obj, fields)
            if check is not None:
                check(obj)
        except (TypeError, ValueError) as err:
            raise RecordError(f"{path}: new record {i}: {err}") from err
        lines.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(old + "".join(lines).encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            os.fsync(folder)  # the rename itself on disk
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        os.close(folder)  # releases the lock


# ------------------------------------------------------------------------------ search runs

#: The settings of one recorded search run; ``stage_sizes`` only for the ResNet, ``hidden`` only for the CNN.
SEARCH_SETTINGS = ("dataset", "model", "width", "n_train", "n_test", "n_monitor", "batch_size", "learning_rate",
                   "momentum", "weight_decay", "eps", "attack_steps", "eval_attack_steps", "clean_epochs", "epochs",
                   "mode", "seed")
#: The per-epoch curves of a search run: (epochs,), (epochs,) and (epochs + 1,) accuracies.
SEARCH_CURVES = ("robust_acc", "clean_acc", "fgsm_train_acc")
#: Chapter 06's recorded CPU search (``scripts/co_search.py``).
SEARCH_FILE = paths.DATA / "06_settings_search.jsonl"
#: The recorded CIFAR-10 runs on a GPU (``scripts/gpu_cifar_search``): search runs with their ``device``.
GPU_SEARCH_FILE = paths.DATA / "gpu" / "cifar10_search.jsonl"

_MODEL_FIELD = {"cnn": "hidden", "resnet": "stage_sizes"}
_MODES = ("standard", "fgsm", "pgd")


def check_search_setting(setting: Any) -> dict:
    """The settings of a search run (:data:`SEARCH_SETTINGS` plus ``hidden`` for ``model="cnn"`` or
    ``stage_sizes`` for ``"resnet"``) taken from ``setting`` (a dict; further keys ignored), after
    checking that every one is there and that ``model`` and ``mode`` (standard, fgsm, pgd) are known."""
    if not isinstance(setting, Mapping):
        raise ValueError(f"setting must be a dict of {SEARCH_SETTINGS}; got {type(setting).__name__}")
    extra = _MODEL_FIELD.get(setting.get("model"))
    if extra is None:
        raise ValueError(f"setting['model'] must be 'cnn' or 'resnet'; got {setting.get('model')!r}")
    missing = [k for k in SEARCH_SETTINGS + (extra,) if k not in setting]
    if missing:
        raise ValueError(f"setting lacks {missing}; a search setting has {SEARCH_SETTINGS + (extra,)}")
    if setting["mode"] not in _MODES:
        raise ValueError(f"setting['mode'] must be 'standard', 'fgsm' or 'pgd'; got {setting['mode']!r}")
    return {k: setting[k] for k in SEARCH_SETTINGS + (extra,)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


_TEXT = ("a string", lambda v: isinstance(v, str))
_INT = ("an integer", _is_int)
_REAL = ("a number", _is_real)
_CURVE = ("a list of numbers", lambda v: isinstance(v, list) and all(_is_real(x) for x in v))
#: How each field of a :class:`SearchRecord` is checked: (what it must be, the test).
_FIELD_CHECKS = {
    **{k: _TEXT for k in ("dataset", "model", "mode", "xla_flags", "device")},
    **{k: _INT for k in ("width", "n_train", "n_test", "n_monitor", "batch_size", "attack_steps", "eval_attack_steps",
                         "clean_epochs", "epochs", "seed", "hidden", "suite_iter")},
    **{k: _REAL for k in ("learning_rate", "momentum", "weight_decay", "eps", "suite_robust_acc")},
    **{k: _CURVE for k in SEARCH_CURVES},
    "stage_sizes": ("a list of integers", lambda v: isinstance(v, list) and all(_is_int(x) for x in v)),
}


@dataclasses.dataclass(frozen=True)
class SearchRecord:
    """One recorded run of chapter 06's settings search (a line of :data:`SEARCH_FILE` or
    :data:`GPU_SEARCH_FILE`): the setting (:data:`SEARCH_SETTINGS`, ``hidden`` for the CNN or
    ``stage_sizes`` for the ResNet), the per-epoch curves ``robust_acc`` (epochs,) (PGD monitor on the
    test points), ``clean_acc`` (epochs,) and ``fgsm_train_acc`` (epochs + 1,) (FGSM accuracy on a
    training subset, before training and after every epoch), and, where measured, the standard
    evaluation of the final network (``suite_robust_acc`` at ``suite_iter`` iterations per attack),
    the ``XLA_FLAGS`` it ran with and its ``device`` (runs without one ran on the CPU machine)."""

    dataset: str
    model: str
    width: int
    n_train: int
    n_test: int
    n_monitor: int
    batch_size: int
    learning_rate: float
    momentum: float
    weight_decay: float
    eps: float
    attack_steps: int
    eval_attack_steps: int
    clean_epochs: int
    epochs: int
    mode: str
    seed: int
    robust_acc: tuple
    clean_acc: tuple
    fgsm_train_acc: tuple
    hidden: Optional[int] = None
    stage_sizes: Optional[tuple] = None
    suite_robust_acc: Optional[float] = None
    suite_iter: Optional[int] = None
    xla_flags: Optional[str] = None
    device: Optional[str] = None

    @classmethod
    def from_json(cls, record: Any) -> "SearchRecord":
        """The record of a JSON object (a dict, as :meth:`to_json` writes it), checked: the setting
        (:func:`check_search_setting`), every field's type, the curves' lengths; unknown fields refused.
        Raises ``ValueError`` naming the field."""
        s = check_search_setting(record)
        allowed = set(_FIELD_CHECKS) - {"stage_sizes" if s["model"] == "cnn" else "hidden"}
        unknown = [k for k in record if k not in allowed]
        if unknown:
            raise ValueError(f"field(s) {unknown} unknown for a {s['model']} search run; it has "
                             f"{SEARCH_SETTINGS + (_MODEL_FIELD[s['model']],) + SEARCH_CURVES} and optionally "
                             f"suite_robust_acc, suite_iter, xla_flags, device")
        missing = [k for k in SEARCH_CURVES if k not in record]
        if missing:
            raise ValueError(f"record lacks the curves {missing}")
        for name, v in record.items():
            what, ok = _FIELD_CHECKS[name]
            if not ok(v):
                raise ValueError(f"field {name!r} must be {what}; got {v!r}")
        for f in ("width", "n_train", "n_test", "n_monitor", "batch_size", "epochs"):
            if record[f] < 1:
                raise ValueError(f"field {f!r} must be >= 1; got {record[f]!r}")
        n, lengths = record["epochs"], [len(record[k]) for k in SEARCH_CURVES]
        if lengths != [n, n, n + 1]:
            raise ValueError(f"fields {list(SEARCH_CURVES)}: record curves must have epochs={n} entries "
                             f"(fgsm_train_acc one more); got {lengths}")
        if ("suite_robust_acc" in record) != ("suite_iter" in record):
            raise ValueError("fields 'suite_robust_acc' and 'suite_iter' go together; got one of them")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
        return cls(**values)

    def to_json(self) -> dict:
        """The JSON object of the record (the fields that are set; lists for the curves)."""
        return {f.name: list(v) if isinstance(v, tuple) else v
                for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}


def load_search_records(path: str | os.PathLike = SEARCH_FILE, *, missing_ok: bool = False) -> list[SearchRecord]:
    """The :class:`SearchRecord` runs of a search file (default :data:`SEARCH_FILE`; ``missing_ok``:
    ``[]`` when there is no file), each checked (:class:`RecordError` names the line and the field)."""
    return load_records(path, SearchRecord.from_json, missing_ok=missing_ok)


def append_search_records(path: str | os.PathLike, records: Iterable[SearchRecord | Mapping]) -> None:
    """Append search runs (:class:`SearchRecord`, or their JSON dicts) to ``path`` (:func:`append_records`:
    every one checked first, the file replaced atomically)."""
    append_records(path, records, SearchRecord.from_json)


# ------------------------------------------------------------------------------ seed checks

#: A chapter's runs at base seeds never used before: ``notebooks/data/<notebook>`` + this suffix.
SEED_CHECK_SUFFIX = "_seed_check.jsonl"
#: The fields of a claim in a seed-check record (``n_seeds``, ``n_test`` where the run glued them).
_SEED_CHECK_CLAIM = ("id", "verdict", "measured", "low", "high")


def seed_check_file(notebook: str) -> Path:
    """The seed-check file of the notebook ``notebook`` (e.g. ``"02_eigenfeatures"``) under :data:`ntknb.paths.DATA`."""
    return paths.DATA / f"{notebook}{SEED_CHECK_SUFFIX}"


def seed_check_record(run_dir: str | os.PathLike, *, command: str) -> dict:
    """The record of one run of a chapter at a base seed never used before, from the output folder
    of ``ntknb run NAME -p seed SEED`` (its ``metrics.json`` and ``parameters.yaml``):
    ``{"seeds", "parameters", "runtime_s", "loadavg", "command", "claims"}``, ``claims`` holding
    each claim's ``id``, ``verdict``, ``measured``, ``low``, ``high``, ``n_seeds`` and ``n_test``.
    Raises ``ValueError`` when the run glued no claims."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    params = yaml.safe_load((run_dir / "parameters.yaml").read_text())
    if not metrics.get("claims"):
        raise ValueError(f"{run_dir}: the run glued no 'claims'; nothing to record")
    keep = _SEED_CHECK_CLAIM + ("n_seeds", "n_test")
    seed, n = int(params["seed"]), int(params.get("n_seeds", 1))
    return {"seeds": list(range(seed, seed + n)), "parameters": params,
            "runtime_s": metrics.get("runtime_s"), "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            "command": command, "claims": [{k: c.get(k) for k in keep} for c in metrics["claims"]]}


def check_seed_check(record: Mapping) -> Mapping:
    """``record`` after checking it is a seed-check run: ``seeds`` a non-empty list of integers,
    ``parameters`` (where present) a mapping, ``claims`` a list of claims each with
    ``id``, ``verdict``, ``measured``, ``low``, ``high``. Raises ``ValueError`` naming the field."""
    seeds = record.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise ValueError(f"field 'seeds' must be a non-empty list of integers; got {seeds!r}")
    if "parameters" in record and not isinstance(record["parameters"], Mapping):
        raise ValueError(f"field 'parameters' must be a mapping; got {record['parameters']!r}")
    claims = record.get("claims")
    if not isinstance(claims, list):
        raise ValueError(f"field 'claims' must be a list of claims; got {claims!r}")
    for i, c in enumerate(claims):
        if not isinstance(c, Mapping):
            raise ValueError(f"field 'claims[{i}]' must be a JSON object; got {c!r}")
        missing = [k for k in _SEED_CHECK_CLAIM if k not in c]
        if missing:
            raise ValueError(f"field 'claims[{i}]' lacks {missing}")
    return record


def unique_runs(records: Sequence[Mapping]) -> list:
    """``records`` with one run per seed set: a record repeated at the same ``seeds`` (appended
    twice) counts once, the last one recorded kept, in the order of first appearance."""
    last = {}
    for i, rec in enumerate(records):  # a record without seeds (an older format) is kept as it is
        last[tuple(rec["seeds"]) if "seeds" in rec else ("record", i)] = rec
    return list(last.values())


def load_seed_checks(path: str | os.PathLike) -> list:
    """The records of a chapter's seed-check file (:func:`seed_check_file`; ``[]`` when there is
    none), each checked (:func:`check_seed_check`), one per seed set (:func:`unique_runs`)."""
    return unique_runs(load_records(path, check_seed_check, missing_ok=True))


# ------------------------------------------------------------------------------ ladder and settings runs

#: Chapter 06's collapse ladder: one run of a rung of a registered protocol a line (``scripts/co_ladder.py``).
LADDER_FILE = paths.DATA / "06_co_ladder.jsonl"
#: The fields every ladder run has (:func:`ntknb.chapters.ch06_overfitting.ladder.ladder_run`).
LADDER_FIELDS = ("protocol", "rung", "seed", "eps", "reduced", "setting", "monitor", "history", "final", "judgement")


def load_ladder_records(path: str | os.PathLike = LADDER_FILE, *, missing_ok: bool = False) -> list[dict]:
    """The ladder runs of ``path`` (default :data:`LADDER_FILE`), each checked for :data:`LADDER_FIELDS`."""
    return load_records(path, fields=LADDER_FIELDS, missing_ok=missing_ok)


#: Chapter 04's PGD-AT settings runs, tried before its defaults were chosen.
SETTINGS_FILE = paths.DATA / "04_pgd_at_settings.jsonl"
#: The fields of a settings run: its name, the ``setting`` (name -> value), its PGD-AT accuracies (text) and a note.
SETTINGS_FIELDS = ("run", "setting", "pgd_clean_acc", "pgd_robust_acc", "note")


def load_settings_records(path: str | os.PathLike = SETTINGS_FILE) -> list[dict]:
    """The settings runs of ``path`` (default :data:`SETTINGS_FILE`), each checked for :data:`SETTINGS_FIELDS`."""
    return load_records(path, fields=SETTINGS_FIELDS)
