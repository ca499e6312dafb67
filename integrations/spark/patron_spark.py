"""Score a Spark DataFrame with a patron run, inside Spark.

Each task starts one ``patron predict`` process and streams its partition's Arrow record
batches through it (``DataFrame.mapInArrow``): Arrow IPC in on standard input, Arrow IPC
out on standard output, memory flat in the partition's size. A patron that fails fails
the task with patron's error message, and Spark retries it as it retries any task.

    from patron_spark import score
    scored = score(df, "/shared/runs/bank", keep=["customer_id"], patron="/opt/patron")
    scored.write.parquet("s3://bucket/scores/")

The run directory reaches the executors by a path they all see (a shared file system),
or with ``ship_run=True`` through ``SparkContext.addFile``; the binary by its path on the
executors. Only ``pyarrow`` and ``pyspark`` are needed, both already on a PySpark cluster.
"""

import os
import subprocess
import threading

import pyarrow as pa

__all__ = ["score", "output_schema", "predict_args"]


def predict_args(run_dir, keep=(), batch_rows=65536, reasons=0, patron="patron", backend="flex"):
    """The ``patron predict`` command line that scores an Arrow stream into an Arrow stream."""
    args = [
        patron,
        "predict",
        "--checkpoint",
        run_dir,
        "--input",
        "-",
        "--input-format",
        "arrow",
        "--output",
        "-",
        "--output-format",
        "arrow",
        "--batch-size",
        str(int(batch_rows)),
        "--backend",
        backend,
    ]
    if keep:
        args += ["--keep", ",".join(keep)]
    if reasons:
        args += ["--reasons", str(int(reasons))]
    return args


def _stream(args, batches, env=None):
    """Run patron on ``batches`` (an iterator of record batches), yielding its output
    batches as they come; raises with patron's message when it fails."""
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        return
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    feed_error = []
    stderr = []

    def feed():
        # Written from a thread while the caller reads patron's output, so neither pipe
        # fills up and blocks the other.
        try:
            with pa.ipc.new_stream(proc.stdin, first.schema) as writer:
                writer.write_batch(first)
                for batch in batches:
                    writer.write_batch(batch)
        except BrokenPipeError:
            pass  # patron stopped reading; its exit status and message say why
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            feed_error.append(e)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    drainer = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    feeder.start()
    drainer.start()
    read_error = None
    try:
        for batch in pa.ipc.open_stream(proc.stdout):
            yield batch
    except (pa.ArrowInvalid, OSError) as e:
        read_error = e  # a patron that stopped: its exit status says more
    except GeneratorExit:
        proc.kill()  # Spark stopped reading (a limit, a cancelled job)
        raise
    finally:
        code = proc.wait()
        feeder.join()
        drainer.join()
    if code != 0:
        text = b"".join(stderr).decode("utf-8", "replace").strip()
        errors = [line for line in text.splitlines() if line.startswith("error")]
        message = errors[-1] if errors else (text.splitlines()[-1] if text else "no message")
        raise RuntimeError(f"patron predict failed (exit status {code}): {message}")
    if feed_error:
        raise feed_error[0]
    if read_error is not None:
        raise read_error


def output_schema(run_dir, input_schema, keep=(), reasons=0, patron="patron", backend="flex"):
    """The Arrow schema patron writes for input of ``input_schema``: asked of patron itself
    with a stream that has no rows, so it always follows the run's task, labels and the
    kept columns' types."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, input_schema):
        pass
    args = predict_args(run_dir, keep, 1, reasons, patron, backend)
    done = subprocess.run(args, input=sink.getvalue().to_pybytes(), capture_output=True)
    if done.returncode != 0:
        text = done.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"patron predict failed (exit status {done.returncode}): {text}")
    return pa.ipc.open_stream(done.stdout).schema


def score(
    df,
    run_dir,
    keep=(),
    batch_rows=65536,
    patron="patron",
    reasons=0,
    backend="flex",
    ship_run=False,
    threads=None,
):
    """``df`` scored by the patron run in ``run_dir``: the id column (or ``row``, counted
    within each partition), the ``keep`` columns with their types, then the run's
    prediction columns (``score`` and ``prediction``, or ``prediction`` and
    ``p_<label>``; a regression's ``prediction`` and quantiles), then reasons if asked.

    ``patron`` is the binary's path on the executors; ``threads`` the threads of each
    patron (default: the task's ``spark.task.cpus``). With ``ship_run``, the run directory
    is sent to the executors with ``SparkContext.addFile`` instead of read from a shared
    path.
    """
    from pyspark import SparkFiles, TaskContext
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    keep = list(keep)
    run_dir = os.path.abspath(run_dir) if os.path.exists(run_dir) else run_dir
    schema = output_schema(run_dir, to_arrow_schema(df.schema), keep, reasons, patron, backend)
    context = df.sparkSession.sparkContext
    # The executors' Python workers import this module to run the tasks.
    context.addPyFile(os.path.abspath(__file__))
    if ship_run:
        context.addFile(run_dir, recursive=True)
    name = os.path.basename(os.path.normpath(run_dir))

    def run(batches):
        local = SparkFiles.get(name) if ship_run else run_dir
        env = dict(os.environ)
        context = TaskContext.get()
        cpus = threads or (context.cpus() if context is not None else 1)
        env["RAYON_NUM_THREADS"] = str(cpus)
        args = predict_args(local, keep, batch_rows, reasons, patron, backend)
        yield from _stream(args, batches, env)

    return df.mapInArrow(run, from_arrow_schema(schema))
