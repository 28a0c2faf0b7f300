"""How long bad input takes to be reported, against the floor of importing TensorFlow.

Each contender is a whole `kerasnotes` command that must fail with exit 2, run in a
fresh process on a fresh (empty) tfds data directory, so nothing is prepared before it
starts; the baseline is a process that only imports TensorFlow and Keras, which every
command pays. Rounds alternate the commands and report medians; the data directory
must still be empty afterwards.

    python benchmarks/fail_fast.py [--rounds 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.join(os.path.dirname(sys.executable), "kerasnotes")
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
CONTENDERS = {
    "import tensorflow, keras (the floor)": (
        [sys.executable, "-c", "import tensorflow, keras"],
        {},
        0,
    ),
    "train cnn --set filters=[0]": ([BIN, "train", "cnn", "--set", "filters=[0]"], {}, 2),
    "train captioner --set beam_width=0": (
        [BIN, "train", "captioner", "--set", "beam_width=0"],
        {},
        2,
    ),
    "train cnn --dataset mnist (offline)": (
        [BIN, "train", "cnn", "--dataset", "mnist"],
        OFFLINE,
        2,
    ),
}


def run_once(command, env, expected_code) -> float:
    with tempfile.TemporaryDirectory() as home:
        data_dir = os.path.join(home, "tensorflow_datasets")
        env = {**os.environ, "HOME": home, "TFDS_DATA_DIR": data_dir, **env}
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=home)
        seconds = time.perf_counter() - started
        assert proc.returncode == expected_code, (command, proc.stderr[-500:])
        assert not os.path.exists(data_dir), f"{command} prepared data"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times = {name: [] for name in CONTENDERS}
    for _ in range(args.rounds):
        for name, (command, env, code) in CONTENDERS.items():
            times[name].append(run_once(command, env, code))
    floor = statistics.median(times["import tensorflow, keras (the floor)"])
    print("| command | seconds (median) | rounds | / floor |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"| `{name}` | {median:.2f} | {rounds} | {median / floor:.2f} |")


if __name__ == "__main__":
    main()
