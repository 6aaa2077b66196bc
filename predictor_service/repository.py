"""The model repository: every trained version on disk, and which one serves.

    <root>/<model>/aliases.json          {"production": "1.0.0", "candidate": "1.1.0", ...}
    <root>/<model>/<version>/model.skops the fitted pipeline (skops, not pickle)
    <root>/<model>/<version>/model.json  its metadata: metrics, data hash, parameters, date

The layout Triton's and MLServer's users know, one folder per version. A version is
written once and never changed (a new model is a new version); what changes is which
version an alias names: `production` serves every request that asks for no version,
`candidate` is the one a canary or a shadow tries. Promoting keeps the production
versions before it, newest last, so that a rollback goes back one step.

A version becomes production or candidate only if it passes check(): its held-out
accuracy meets the threshold, and its artifact holds nothing that skops does not trust.
"""

import fcntl
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import skops.io

from servicekit.errors import ServiceError

from .config import MODEL_NAME
from .model import TRUSTED_TYPES, metadata_path

ARTIFACT = "model.skops"
ALIASES = "aliases.json"
PRODUCTION = "production"
CANDIDATE = "candidate"
VERSION_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class UnknownVersion(ServiceError):
    """A version that this repository (or this server) does not have: 404."""

    status = 404

    def __init__(self, version, known):
        listed = ", ".join(known) or "none"
        super().__init__(f"Unknown model version {version!r}: the versions here are {listed}.")


class LifecycleError(Exception):
    """A lifecycle step that must not happen, such as promoting a version that fails check()."""


def version_key(version):
    """Sort key of a MAJOR.MINOR.PATCH version: 1.10.0 after 1.9.0."""
    return tuple(int(part) for part in version.split("."))


def is_version(text):
    return bool(VERSION_PATTERN.match(text))


@dataclass(frozen=True)
class ModelVersion:
    """One version's folder in the repository."""

    name: str
    version: str
    folder: Path

    @property
    def artifact(self):
        return self.folder / ARTIFACT

    @property
    def metadata(self):
        return json.loads(metadata_path(self.artifact).read_text(encoding="utf-8"))


class Repository:
    """The versions of one model under root/<model>/, and its aliases."""

    def __init__(self, root, model=MODEL_NAME):
        self.root = Path(root)
        self.model = model
        self.folder = self.root / model

    # Versions

    def versions(self):
        """Every complete version (artifact and metadata both written), oldest first."""
        if not self.folder.is_dir():
            return []
        found = [
            ModelVersion(self.model, entry.name, entry)
            for entry in self.folder.iterdir()
            if entry.is_dir() and is_version(entry.name)
            and (entry / ARTIFACT).is_file() and metadata_path(entry / ARTIFACT).is_file()
        ]
        return sorted(found, key=lambda found_version: version_key(found_version.version))

    def get(self, version):
        """Return one version; raise UnknownVersion if the repository has no such version."""
        folder = self.folder / version
        if is_version(version) and (folder / ARTIFACT).is_file() \
                and metadata_path(folder / ARTIFACT).is_file():
            return ModelVersion(self.model, version, folder)
        raise UnknownVersion(version, [known.version for known in self.versions()])

    def artifact(self, name):
        """The artifact of a version, or of the version an alias names."""
        return self.get(self.resolve(name)).artifact

    def add(self, version, write):
        """Create a version: write(folder) fills a new folder, which then appears at once,
        complete, under its name. An existing version is never overwritten."""
        if not is_version(version):
            raise LifecycleError(f"{version!r} is not a MAJOR.MINOR.PATCH version")
        target = self.folder / version
        if target.exists():
            raise LifecycleError(f"{self.model} {version} exists; versions never change: "
                                 "train a new version instead")
        staging = self.folder / f".{version}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            write(staging)
            os.replace(staging, target)  # a rename: readers see no folder or a whole one
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return ModelVersion(self.model, version, target)

    def replace(self, version, write):
        """Rebuild a version in place (only `make model` does, for a shipped version whose
        data or code changed): the new folder replaces the old in one rename each."""
        old = self.folder / version
        retired = self.folder / f".{version}.{os.getpid()}.old"
        if old.exists():
            os.replace(old, retired)
        try:
            return self.add(version, write)
        finally:
            shutil.rmtree(retired, ignore_errors=True)

    # Checks

    def check(self, version, min_accuracy):
        """Return why a version must not serve as production or candidate ([] if it may)."""
        model_version = self.get(version)
        problems = []
        accuracy = model_version.metadata.get("metrics", {}).get("test_accuracy")
        if accuracy is None or accuracy < min_accuracy:
            problems.append(f"held-out accuracy {accuracy} is below the threshold {min_accuracy}")
        try:
            untrusted = skops.io.get_untrusted_types(file=model_version.artifact)
        except Exception as exc:  # not a skops file at all
            problems.append(f"the artifact is not a readable skops file ({type(exc).__name__})")
        else:
            extra = sorted(set(untrusted) - set(TRUSTED_TYPES))
            if extra:
                problems.append(
                    f"the artifact holds types skops does not trust: {', '.join(extra)}")
        return problems

    # Aliases

    @property
    def aliases_path(self):
        return self.folder / ALIASES

    def aliases(self):
        """{"production": version or None, "candidate": ..., "previous": [...], "changes": []}."""
        try:
            stored = json.loads(self.aliases_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            stored = {}
        return {PRODUCTION: None, CANDIDATE: None, "previous": [], "changes": [], **stored}

    def resolve(self, name):
        """Return the version an alias names, or name itself if it is a version."""
        if name in (PRODUCTION, CANDIDATE):
            version = self.aliases()[name]
            if version is None:
                raise UnknownVersion(name, [known.version for known in self.versions()])
            return version
        return self.get(name).version

    def stage(self, version, min_accuracy):
        """Name version the candidate (None: no candidate)."""
        with self._changing_aliases() as aliases:
            if version is not None:
                self._require_servable(version, min_accuracy)
                if version == aliases[PRODUCTION]:
                    raise LifecycleError(f"{version} is production already")
            aliases[CANDIDATE] = version
            self._record(aliases, "stage", version)
        return aliases

    def promote(self, version, min_accuracy):
        """Make version (default: the candidate) production; its predecessor is kept for
        a rollback."""
        with self._changing_aliases() as aliases:
            version = version or aliases[CANDIDATE]
            if version is None:
                raise LifecycleError("no candidate to promote: name a version")
            self._require_servable(version, min_accuracy)
            if version == aliases[PRODUCTION]:
                raise LifecycleError(f"{version} is production already")
            if aliases[PRODUCTION] is not None:
                aliases["previous"].append(aliases[PRODUCTION])
            aliases[PRODUCTION] = version
            if aliases[CANDIDATE] == version:
                aliases[CANDIDATE] = None
            self._record(aliases, "promote", version)
        return aliases

    def rollback(self):
        """Make the production version before this one production again; drop the candidate."""
        with self._changing_aliases() as aliases:
            if not aliases["previous"]:
                raise LifecycleError("nothing to roll back to: no earlier production version")
            rolled_back = aliases[PRODUCTION]
            aliases[PRODUCTION] = aliases["previous"].pop()
            aliases[CANDIDATE] = None
            self._record(aliases, "rollback", aliases[PRODUCTION], rolled_back=rolled_back)
        return aliases

    def initialise(self, production):
        """Name the first production version, if none is named yet; return the aliases."""
        with self._changing_aliases() as aliases:
            if aliases[PRODUCTION] is None:
                aliases[PRODUCTION] = self.get(production).version
                self._record(aliases, "initialise", production)
        return aliases

    def _require_servable(self, version, min_accuracy):
        problems = self.check(version, min_accuracy)
        if problems:
            raise LifecycleError(f"{self.model} {version} cannot serve: {'; '.join(problems)}")

    @staticmethod
    def _record(aliases, action, version, **details):
        aliases["changes"].append({
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "action": action, "version": version, **details,
        })

    @contextmanager
    def _changing_aliases(self):
        """Yield the aliases to change, holding a lock, then write them atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".aliases.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two lifecycle commands at once take turns
            aliases = self.aliases()
            yield aliases
            tmp = self.aliases_path.with_name(f".{ALIASES}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(aliases, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.aliases_path)
