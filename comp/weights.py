"""Pretrained weights for a backbone, from the user's disk: ``imagenet`` (the file Keras keeps
in its own cache, ``$KERAS_HOME/models``, where it looks before downloading), a file path, or
``none``. comp does not download unasked: where the file is missing the run stops before any
work with one line saying which file, where to put it, where Keras gets it and its hash.
With ``COMP_DOWNLOAD_WEIGHTS=1`` it fetches the file once, saying so, into Keras's cache.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

from comp.errors import ConfigError

NONE, IMAGENET = "none", "imagenet"
DOWNLOAD = "COMP_DOWNLOAD_WEIGHTS"  # =1: the user allows one download of missing ImageNet weights
_probing = threading.local()


@contextlib.contextmanager
def probing():
    """A probe build (listing a plugin's knobs) inside: backbones are built without weights."""
    _probing.on = True
    try:
        yield
    finally:
        _probing.on = False


def is_probing() -> bool:
    """Whether a probe build is running (``probing``): a plugin reads no weights then."""
    return getattr(_probing, "on", False)


class _Asked(Exception):
    """What a Keras application asked its download function for: (file name, url, hash)."""


@functools.lru_cache(maxsize=None)
def imagenet_file(arch: str, build: Callable[..., Any]) -> tuple[str, str, str]:
    """(file name, url, expected hash) of the ImageNet weights without the top that
    ``build`` (a ``keras.applications`` constructor) loads, asked of Keras itself: its
    download function is replaced for the call by one that records what it was asked and
    stops, so the names and hashes stay Keras's own, whatever its version. (The model it
    builds on the way is dropped; no ``clear_session``: this may run inside a model's build.)"""
    from unittest import mock

    from keras.src.utils import file_utils  # the module the applications call get_file through

    def ask(fname, origin=None, file_hash=None, **_):
        raise _Asked(fname, origin, file_hash)

    try:
        with mock.patch.object(file_utils, "get_file", ask), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "weights for input shape (224, 224) will be loaded"
            build(include_top=False, weights=IMAGENET, input_shape=(32, 32, 3), pooling="avg")
    except _Asked as asked:
        return asked.args
    raise ConfigError(f"{arch}: Keras asked for no ImageNet weights file; use model.hp.weights=none or PATH")


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    from keras.src.backend import config  # where keras.utils.get_file looks: no public accessor

    return Path(os.path.expanduser(config.keras_home())) / "models"


def resolve(arch: str, build: Callable[..., Any], setting: str) -> str | None:
    """The weights file a backbone starts from (None: random initialisation), checked: a
    missing or damaged file is a one-line ``ConfigError`` before any work."""
    setting = str(setting)
    if setting.lower() == NONE or getattr(_probing, "on", False):
        return None
    if setting.lower() == IMAGENET:
        name, url, digest = imagenet_file(arch, build)
        path = keras_models_dir() / name
        if not path.is_file() and os.environ.get(DOWNLOAD) == "1":
            path = _download(arch, name, url, digest)
        if not path.is_file():
            raise ConfigError(f"model.hp.weights=imagenet: {arch}'s ImageNet weights {path} are not on this machine "
                              f"and comp does not download unasked; copy the file there (from {url}, hash {digest}), "
                              f"or set {DOWNLOAD}=1 to let comp fetch it once, or set model.hp.weights=PATH to a "
                              "weights file, or model.hp.weights=none")
        if digest and not _matches(path, digest):
            raise ConfigError(f"model.hp.weights=imagenet: {path} is damaged (its hash is not Keras's {digest}); "
                              f"copy it again from {url}")
        return str(path)
    path = Path(setting).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.hp.weights={setting}: no such file; give a Keras weights file (.weights.h5 or "
                          ".h5 of the backbone without its top), or imagenet, or none")
    return str(path)


def _download(arch: str, name: str, url: str, digest: str) -> Path:
    """Fetch the ImageNet weights into Keras's cache, said once (``COMP_DOWNLOAD_WEIGHTS=1``:
    the user allowed it); Keras checks the file's hash. A failure is one line."""
    print(f"downloading {arch}'s ImageNet weights {name} from {url} into {keras_models_dir()} ({DOWNLOAD}=1); "
          "later runs read them there", flush=True)
    from keras.src.utils import file_utils  # the module the applications fetch through

    try:
        return Path(file_utils.get_file(name, url, cache_subdir="models", file_hash=digest))
    except Exception as exc:  # no network, a proxy, a file whose hash is not Keras's
        reason = first_line(exc)
        raise ConfigError(f"{DOWNLOAD}=1: could not download {url} ({reason}); copy the file to "
                          f"{keras_models_dir() / name} (hash {digest}) instead") from None


def first_line(exc: BaseException) -> str:
    """The first line of a library's error (its type where it says nothing), for a one-line refusal."""
    return str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__


def load_checked(backbone: Any, path: str, setting: str) -> None:
    """Load ``path`` into ``backbone``; a file Keras cannot read or whose shapes differ is a
    one-line ``ConfigError`` naming it."""
    try:
        backbone.load_weights(path)
    except Exception as exc:  # h5py's, Keras's and shape errors alike: the file is not these weights
        reason = first_line(exc)
        raise ConfigError(f"model.hp.weights={setting}: {path} cannot be loaded into {backbone.name} "
                          f"({reason}); is it this backbone's weights without its top, and complete?") from None


def file_digest(path: str) -> str:
    """The sha256 of a weights file, computed once per file version in a process."""
    stat = Path(path).stat()
    return _digest_cached(str(path), stat.st_size, stat.st_mtime)


@functools.lru_cache(maxsize=32)
def _digest_cached(path: str, size: int, mtime: float) -> str:
    from comp.files import file_sha256

    return file_sha256(Path(path))


@functools.lru_cache(maxsize=32)
def _matches_cached(path: str, digest: str, size: int, mtime: float) -> bool:
    from keras.src.utils.file_utils import validate_file

    return bool(validate_file(path, digest))


def _matches(path: Path, digest: str) -> bool:
    """Whether ``path`` has Keras's ``digest`` (sha256 or md5, told apart by Keras); hashed
    once per file version in a process (a backbone is built for every fold)."""
    stat = path.stat()
    return _matches_cached(str(path), digest, stat.st_size, stat.st_mtime)
