"""Public datasets through tensorflow-datasets: prepared once, with clear errors offline.

Before a download, the dataset's own hosts are probed for a few seconds, so a machine
without network fails at once with one line instead of after minutes of retries.
"""

from __future__ import annotations

import os

from kerasnotes.data import SHIFTED
from kerasnotes.errors import DataError

# Where tfds looks first for a prepared copy of any dataset.
_TFDS_MIRROR = "storage.googleapis.com"
_REACH_SECONDS = 4.0


def unreachable_host(urls) -> str | None:
    """The first host of `urls` that cannot be reached in seconds (with the reason), or
    `None` when all can: the check made before a download, so that a machine without
    network fails at once instead of after minutes of retries. Honours the standard
    proxy variables (a host behind a proxy is reached through the proxy)."""
    import concurrent.futures
    import socket
    import urllib.parse
    import urllib.request

    proxies = urllib.request.getproxies()
    targets = set()
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        if proxy and not urllib.request.proxy_bypass(host):
            proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            host, port = proxy_parts.hostname, proxy_parts.port or 80
        targets.add((host, port))

    def connect(target):
        socket.create_connection(target, timeout=_REACH_SECONDS).close()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(targets)))
    try:
        futures = {pool.submit(connect, target): target for target in targets}
        done, _ = concurrent.futures.wait(futures, timeout=_REACH_SECONDS + 1)
        for future, (host, port) in futures.items():
            error = future.exception() if future in done else TimeoutError("timed out")
            if error is not None:
                reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                return f"{host}:{port} ({reason})"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return None


def class_folder_or_tfds(dataset: str, data_dir: str | None, *, embedded, examples, holds: str):
    """What a classification dataset name that is not embedded means: `None` for a
    directory (one sub-folder of `holds` per class), else the prepared tfds builder of
    that name; a clear error for a file, a missing path or an unknown name."""
    if os.path.isdir(dataset):
        return None
    if os.path.exists(dataset):
        raise DataError(
            f"Dataset path {dataset!r} is a file; expected a directory with one sub-folder "
            f"of {holds} per class."
        )
    valid = (
        f"an embedded dataset ({', '.join(embedded)}), a directory with one sub-folder of "
        f"{holds} per class, or a tfds name (such as {', '.join(examples)})"
    )
    if os.sep in dataset or dataset.startswith((".", "~")):
        raise DataError(f"Dataset path {dataset!r} does not exist; expected {valid}.")
    return tfds_builder(dataset, data_dir, valid=valid, local=f"a local folder of {holds}")


def classified_keys(info, name: str, feature_type, what: str) -> tuple[str, str]:
    """The keys of a tfds dataset's `feature_type` feature (`tfds.features.Image`,
    `Video`, `Audio`) and of its class label: its supervised keys, else the first
    feature of each kind; a `DataError` naming `what` it is not otherwise."""
    import tensorflow_datasets as tfds

    features = info.features
    keys = info.supervised_keys if info.supervised_keys else ()
    if len(keys) != 2:
        keys = tuple(
            next((k for k, f in features.items() if isinstance(f, kind)), None)
            for kind in (feature_type, tfds.features.ClassLabel)
        )
    example, label = keys
    if not (
        example
        and label
        and isinstance(features[example], feature_type)
        and isinstance(features[label], tfds.features.ClassLabel)
    ):
        raise DataError(
            f"Dataset {name!r} is not {what} dataset: it needs a "
            f"{feature_type.__name__.lower()} feature and a class label feature."
        )
    return example, label


def tfds_builder(name: str, data_dir: str | None, *, valid: str, local: str):
    """The prepared tfds builder `name`, downloading it once; clear errors offline.

    `valid` says what a dataset name could have been, `local` what local data could
    replace a download, for the errors.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"Unknown dataset {name!r}: expected {valid}.") from None
    prepared = os.path.isfile(os.path.join(builder.data_path, "dataset_info.json"))
    # Under `tfds.testing.mock_data` nothing is downloaded, so nothing is checked.
    mocked = tfds.core.DatasetBuilder.download_and_prepare.__module__.startswith(
        "tensorflow_datasets.testing"
    )
    if not (prepared or mocked):
        urls = list(builder.url_infos or {}) or [f"https://{_TFDS_MIRROR}/"]
        unreachable = unreachable_host(urls)
        if unreachable:
            raise _not_downloadable(name, builder, f"cannot reach {unreachable}", local)
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - network and checksum errors of every kind.
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _not_downloadable(name, builder, reason, local) from None
    return builder


def _not_downloadable(name: str, builder, reason: str, local: str) -> DataError:
    return DataError(
        f"Dataset {name!r} is not prepared in {builder.data_dir} and could not be "
        f"downloaded ({reason[:200]}). Prepare it once on a machine with network "
        "access (tfds build, or any kerasnotes run) and point TFDS_DATA_DIR at it, "
        f"or pass {local}."
    )


def tfds_parts(info) -> dict[str, str]:
    """The tfds split that serves as each of train, validation and test.

    A split the dataset lacks is cut from its training split, never taken from another
    held-out split (best-epoch selection and early stopping read validation, so a test
    split that were validation would report figures chosen on it): without a validation
    split (`validation`, `dev` or `valid`) one tenth of train validates, without a test
    split one tenth tests. tfds writes a split's examples in the order of a hash of their
    keys, so a slice of it is a split by hash, not by the order the data came in.
    """
    splits = set(info.splits)
    parts = {
        "train": "train",
        "validation": next((s for s in ("validation", "dev", "valid") if s in splits), None),
        "test": "test" if "test" in splits else None,
    }
    missing = [part for part, split in parts.items() if split is None]
    if missing:
        kept = 100 - 10 * len(missing)
        parts["train"] = f"train[:{kept}%]"
        for i, part in enumerate(missing):
            parts[part] = f"train[{kept + 10 * i}%:{kept + 10 * (i + 1)}%]"
    return parts


def with_shifted(info, parts: dict[str, str]) -> dict[str, str]:
    """`parts` (`tfds_parts`), with the shifted split where the dataset has one (the
    embedded scene generators: `kerasnotes.data.scenes`)."""
    return {**parts, SHIFTED: SHIFTED} if SHIFTED in info.splits else parts


def split_sizes(info, parts: dict[str, str]) -> dict[str, int]:
    """Examples in each part (0 where tfds does not know)."""

    def size(split):
        try:
            return int(info.splits[split].num_examples)
        except (KeyError, ValueError, TypeError):
            return 0

    return {part: size(split) for part, split in parts.items()}


def size_pair(image_size) -> tuple[int, int] | None:
    """An `image_size` setting (`None`, an int or `[height, width]`) as `(height, width)`."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    return tuple(image_size)


def tfds_source(builder) -> str:
    """How a run names its tfds data: `tfds:<name>/<config>`."""
    config = builder.builder_config
    return f"tfds:{builder.name}/{config.name}" if config else f"tfds:{builder.name}"
