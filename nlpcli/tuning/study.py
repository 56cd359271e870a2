"""The Optuna side of `nlpcli tune`: loading Optuna (the optional `tune` extra), the storage a study lives in (a
journal file in the study's folder, or a database URL), opening a study (new, resumed, or joined by another
worker), the sampler and the pruner, and the trials a killed worker left behind.

Workers: every trial records which process runs it (host, pid, start time of the process). A trial still RUNNING
whose process is gone from this host (a worker killed with SIGKILL, a machine that rebooted) is marked failed and
queued again with the same parameters (Optuna's retry callback) by the next worker that looks: each worker looks
before each trial. On a database, Optuna's heartbeat does the same for workers of other machines.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from nlpcli.errors import UserError, first_line

INSTALL = "pip install 'nlpcli[tune]'"
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("minimize", "maximize")
URL_SCHEMES = ("sqlite", "postgresql", "mysql")  # RDB URLs (SQLAlchemy's, with an optional +driver)
HEARTBEAT_S, GRACE_S = 30, 120  # a database trial whose worker has been silent for GRACE_S is failed and retried
MAX_RETRIES = 3  # how often a trial whose worker died is queued again
WORKER = "worker"  # user attribute: {host, pid, started} of the process running the trial


def load_optuna() -> ModuleType:
    """The optuna module, quiet (nlpcli prints each trial itself); a UserError naming the pip command when it is
    not installed."""
    try:
        import optuna
    except ImportError:
        raise UserError("nlpcli tune needs Optuna, which is not installed.",
                        hint=f"Install it with: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def describe_url(url: str) -> str:
    """A database URL with its password hidden (for messages and tune.json)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (an unparsable URL is shown as given: it has no password to hide)
        return url


def open_storage(optuna: ModuleType, url: str | None, study_dir: Path) -> tuple[Any, str]:
    """(storage, its description): Optuna's journal file `study_dir/tune.journal` (safe for several processes of
    one machine), or the RDB at `url` (SQLite, PostgreSQL, MySQL: workers of several machines share it)."""
    from nlpcli import layout

    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        path = study_dir / layout.TUNE_JOURNAL
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path))), str(path)
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in URL_SCHEMES or "://" not in url:
        raise UserError(f"--storage {url}: expected a database URL: sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB "
                        "or mysql://USER:PASSWORD@HOST/DB (SQLAlchemy's, with an optional +driver).",
                        hint="Without --storage the study is kept in a journal file in the --output-dir.")
    shown = describe_url(url)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
    try:
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                             heartbeat_stale_trial_callback=retry)
    except ImportError as err:
        raise UserError(f"--storage {shown}: its database driver is not installed ({err}).",
                        hint="PostgreSQL: pip install psycopg2-binary (URL postgresql+psycopg2://...) or "
                             "'psycopg[binary]'; MySQL: pip install pymysql (URL mysql+pymysql://...).") from None
    except Exception as err:  # noqa: BLE001  (SQLAlchemy's errors: a bad URL, a server that cannot be reached)
        raise UserError(f"--storage {shown}: cannot open the database: {first_line(err)}") from None
    return storage, shown


def pruner(optuna: ModuleType, name: str, startup: int) -> Any:
    """median: a trial whose evaluation is worse than the median of earlier trials at the same step is stopped
    (after `startup` finished trials); hyperband: Optuna's Hyperband over evaluation steps; none: never."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial `number` of a study seeded with `seed` (mixed: neighbouring seeds do not give
    shifted copies of one sequence)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def sampler(optuna: ModuleType, seed: int, startup: int) -> Any:
    """Optuna's TPE sampler, seeded per trial (from --seed and the trial's number): a study samples the same
    parameters however many workers run it, and two workers never draw the same random start. Its first `startup`
    trials are random; the sampler learns from every finished trial of the study, whichever worker ran it."""

    class PerTrialSeed(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self.current: tuple[int, Any] | None = None

        def _for(self, trial: Any) -> Any:
            if self.current is None or self.current[0] != trial.number:
                tpe = optuna.samplers.TPESampler(seed=trial_seed(seed, trial.number), n_startup_trials=startup)
                self.current = (trial.number, tpe)
            return self.current[1]

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
            return self._for(trial).sample_independent(study, trial, name, distribution)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._for(trial).after_trial(study, trial, state, values)

    return PerTrialSeed()


def open_study(optuna: ModuleType, storage: Any, name: str, direction: str, resume: str, facts: dict[str, Any],
               **kwargs: Any) -> Any:
    """The study `name`: a new one (`resume` no: refused when it exists), the existing one (yes: refused when there
    is none), or either (auto: how every worker of a shared study starts). `facts` (task, metric) are recorded by
    the worker that creates it; a worker that finds them different is refused. `kwargs`: sampler, pruner."""
    exists = name in optuna.study.get_all_study_names(storage)
    if resume == "no" and exists:
        raise UserError(f"study '{name}' already exists in its storage.",
                        hint="Continue it with --resume (several workers: --resume auto on each), start over with "
                             "--overwrite, or choose another --output-dir or --study-name.")
    if resume == "yes" and not exists:
        raise UserError(f"--resume: there is no study '{name}' to continue in its storage.",
                        hint="Start it without --resume (or with --resume auto).")
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                    load_if_exists=resume != "no", **kwargs)
    except optuna.exceptions.DuplicatedStudyError:
        raise UserError(f"study '{name}' was just created by another worker.",
                        hint="Start every worker of a shared study with --resume auto.") from None
    if study.direction.name.lower() != direction:
        raise UserError(f"study '{name}' {study.direction.name.lower()}s its objective; --direction {direction} "
                        "would turn it around.", hint=f"Give --direction {study.direction.name.lower()}.")
    recorded = study.user_attrs
    for key, value in facts.items():
        if key not in recorded:
            study.set_user_attr(key, value)
        elif recorded[key] != value:
            raise UserError(f"study '{name}' was started with {key} {recorded[key]}, not {value}.",
                            hint=f"Give the same {key}, or start another study (--study-name, --output-dir).")
    return study


def process_start(pid: int) -> str | None:
    """When process `pid` started (Linux: clock ticks since boot), so that a reused pid is not taken for the
    worker; None where /proc does not say."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_worker() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid())}


def is_gone(worker: Any) -> bool:
    """True when `worker` ran on this host and its process no longer runs (or is a zombie)."""
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process runs under that pid
        return worker.get("started") is not None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state == "Z" or (worker.get("started") is not None and process_start(pid) != worker.get("started"))


def fail_and_retry(optuna: ModuleType, study: Any, storage: Any, number: int) -> Any:
    """Mark trial `number` failed (when it is still running) and queue it again with the same parameters (at most
    MAX_RETRIES times). Returns the frozen, failed trial."""
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                                number)
    state = optuna.trial.TrialState
    try:
        storage.set_trial_state_values(trial_id, state=state.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first, or it has ended
        return storage.get_trial(trial_id)
    failed = storage.get_trial(trial_id)
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(study, failed)
    return failed


def fail_orphans(optuna: ModuleType, study: Any, storage: Any) -> list[Any]:
    """Every RUNNING trial whose worker process is gone from this host: failed and queued again."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return [fail_and_retry(optuna, study, storage, trial.number) for trial in running
            if is_gone(trial.user_attrs.get(WORKER))]
