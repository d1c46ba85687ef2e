"""The wheel built from this checkout works outside it: installed into a new virtualenv, it finds its
Spark profiles (package data) and the Delta jars, from an empty folder.

The new virtualenv borrows the dependencies of the project's (a .pth file naming its site-packages,
where the editable install's own .pth is not read), so that the test needs no downloads but the build
backend; the package itself comes only from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_and_runs_from_an_empty_folder(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    [wheel] = dist.glob("featurestore_spark-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FSSPARK_", "PYSPARK_", "SPARK_"))}
    env |= {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": str(python),
            "FSSPARK_JARS_DIR": str(ROOT / ".cache" / "jars")}  # the cached jars, not a download
    version = subprocess.run([str(env_dir / "bin" / "fsspark"), "--version"], cwd=empty, env=env,
                             capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"fsspark {wheel.name.split('-')[1]}"

    probe = ("import featurestore_spark, featurestore_spark.session as s\n"
             "spark = s.build_session('local')\n"
             "spark.range(3).write.format('delta').save('t')\n"
             "print(featurestore_spark.__file__)\n"
             "print(spark.read.format('delta').load('t').count(), spark.conf.get('spark.sql.session.timeZone'))\n")
    run = subprocess.run([str(python), "-c", probe], cwd=empty, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    where, result = run.stdout.strip().splitlines()[-2:]
    assert where.startswith(site) and not where.startswith(str(ROOT))  # the wheel's copy, not the checkout
    assert result == "3 UTC"
