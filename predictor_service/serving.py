"""The versions one worker serves, kept in step with the model repository's aliases.

Each worker loads the versions the repository's aliases name: production, the
candidate, and the production before this one (so a rollback finds it warm). A
version named later, by `python -m predictor_service.repository stage` or `promote`,
is loaded and warmed up in the background within a poll (REPOSITORY_POLL_SECONDS);
only then does the worker serve it under its alias, so production changes at once
from one ready model to the next, and a version that fails to load leaves the one
before serving. A loaded version stays loaded for the worker's life: a request the
gateway routed a moment before an alias moved still finds its version.
"""

import gc
import json
import logging
import threading
import time
from pathlib import Path

from flask import current_app

from .metrics import ALIAS_WORKERS, MODEL_READY, WORKERS
from .model import ModelNotReady, metadata_path
from .repository import ARTIFACT, CANDIDATE, PRODUCTION, UnknownVersion

log = logging.getLogger(__name__)

PREVIOUS = "previous"
# What a worker loads, in this order: production first, so the worker is ready soonest.
SERVED_ALIASES = (PRODUCTION, CANDIDATE, PREVIOUS)


def settle_long_lived():
    """Put what is alive now, the versions just loaded and the libraries, out of the cyclic
    garbage collector's reach: it would walk them at each full collection, some 140,000
    objects with two versions, 45-70 ms in which the worker answers nothing (on gevent,
    every request it has read waits; docs/performance.md, round six). They live as long
    as the worker; what they drop is still freed by its reference count."""
    gc.collect()  # what is garbage already is not kept for good
    gc.freeze()


def get_models():
    """Return the current app's ServedModels, which create_app made."""
    return current_app.extensions["models"]


class RepositorySource:
    """Versions named by a model repository's aliases (repository.py)."""

    def __init__(self, repository):
        self.repository = repository

    def named(self):
        aliases = self.repository.aliases()
        previous = aliases["previous"][-1] if aliases["previous"] else None
        return {PRODUCTION: aliases[PRODUCTION], CANDIDATE: aliases[CANDIDATE], PREVIOUS: previous}

    def artifact(self, version):
        return self.repository.folder / version / ARTIFACT

    def artifact_name(self, version):
        """How clients see where a version comes from: no path of the server."""
        return f"{version}/{ARTIFACT}"


class ArtifactSource:
    """One artifact outside any repository (PREDICTOR_MODEL_PATH), served as production."""

    def __init__(self, path):
        self.path = Path(path)

    def named(self):
        try:
            version = json.loads(metadata_path(self.path).read_text(encoding="utf-8"))["version"]
        except (OSError, ValueError, KeyError):
            version = self.path.name  # the load fails, and says why
        return {PRODUCTION: version}

    def artifact(self, version):
        return self.path

    def artifact_name(self, version):
        return self.path.name


class ServedModels:
    """The ModelHolders of one worker, by version, and which version each alias names."""

    def __init__(self, source, make_holder, poll_seconds=1.0):
        self.source = source
        self._make_holder = make_holder
        self._poll_seconds = poll_seconds
        # Replaced, never changed in place: request threads read them without a lock.
        self._holders = {}
        self._aliases = {}
        self._named = None
        self._source_error = None
        self._synced = threading.Event()
        self._sync_lock = threading.Lock()
        WORKERS.set(1)

    def start(self):
        """Load the named versions and keep following the aliases, in a daemon thread."""
        threading.Thread(target=self._follow, name="model-repository", daemon=True).start()

    def _follow(self):
        while True:
            try:
                self.load()
            except Exception:  # the thread must outlive one bad poll, or the worker stops following
                log.exception("could not follow the model repository")
            time.sleep(self._poll_seconds)

    def load(self):
        """Load every named version not loaded yet, then serve each under its alias."""
        with self._sync_lock:
            try:
                named = self.source.named()
            except Exception as exc:  # an unreadable aliases file: keep serving what we have
                if self._source_error is None:
                    log.exception("could not read the model repository's aliases")
                self._source_error = f"could not read the model repository ({type(exc).__name__})"
                self._synced.set()
                return
            self._source_error = None
            if named != self._named:
                self._named = named
                self._load_versions(named)
            self._synced.set()

    def _load_versions(self, named):
        loaded = False
        for alias in SERVED_ALIASES:
            version = named.get(alias)
            holder = self._holders.get(version)
            if version is None or (holder is not None and holder.ready):
                continue
            holder = self._make_holder(self.source.artifact(version))
            holder.load()
            self._holders = {**self._holders, version: holder}
            loaded = True
        if loaded:
            settle_long_lived()
        aliases = {alias: version for alias, version in named.items()
                   if version is not None and self._holders[version].ready}
        if PRODUCTION not in aliases and PRODUCTION in self._aliases:
            # The new production did not load here: the one before keeps serving.
            aliases[PRODUCTION] = self._aliases[PRODUCTION]
        for alias, version in self._aliases.items():
            if aliases.get(alias) != version:
                ALIAS_WORKERS.labels(alias, version).set(0)
        for alias, version in aliases.items():
            ALIAS_WORKERS.labels(alias, version).set(1)
        if aliases.get(PRODUCTION) != self._aliases.get(PRODUCTION):
            log.info("serving %s as production", aliases.get(PRODUCTION))
        self._aliases = aliases
        MODEL_READY.set(1 if PRODUCTION in aliases else 0)

    def wait(self, timeout=None):
        """Block until the first load has finished; return whether production is ready."""
        self._synced.wait(timeout)
        return self.ready

    @property
    def ready(self):
        return PRODUCTION in self._aliases

    @property
    def error(self):
        """Why production is not ready, or None."""
        if self.ready:
            return None
        if self._source_error:
            return self._source_error
        named = (self._named or {}).get(PRODUCTION)
        if self._named is not None and named is None:
            return "the model repository names no production version"
        holder = self._holders.get(named)
        return holder.error if holder is not None else None

    def holder(self, version=None):
        """The holder of a version, an alias, or (None) production.

        Raise UnknownVersion for a version this worker does not serve, and ModelNotReady
        while production, or the version asked for, is not loaded."""
        if not version or version in (PRODUCTION, CANDIDATE):
            alias = version or PRODUCTION
            if alias not in self._aliases:
                if alias == PRODUCTION:
                    raise ModelNotReady(self.error or "the model is still loading")
                raise UnknownVersion(alias, sorted(self._holders))
            version = self._aliases[alias]
        holder = self._holders.get(version)
        if holder is None:
            raise UnknownVersion(version, sorted(self._holders))
        return holder

    @property
    def model(self):
        """Production's loaded model; raise ModelNotReady until it is."""
        return self.holder().model

    def describe(self):
        """Every version this worker holds: its identity, aliases, state and metrics."""
        described = []
        for version, holder in sorted(self._holders.items()):
            entry = {
                "version": version,
                "aliases": sorted(alias for alias, named in self._aliases.items()
                                  if named == version),
                "ready": holder.ready,
            }
            if holder.ready:
                metadata = holder.model.metadata
                entry.update(name=metadata["name"], metrics=metadata["metrics"],
                             trained_at=metadata["training"]["trained_at"])
            else:
                entry["error"] = holder.error
            described.append(entry)
        return described
