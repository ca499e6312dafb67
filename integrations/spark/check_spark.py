"""Checks and measures patron_spark on a real Spark in local mode (tests/spark.rs and the
benchmarks run it).

    python3 check_spark.py score PATRON RUN DATA.csv EXPECTED.csv WORK
        a 5-partition DataFrame of DATA scored through Spark equals EXPECTED (the
        single-process `patron predict` of DATA) row for row; a missing input column fails
        the job with patron's message.
    python3 check_spark.py retry PATRON RUN DATA.csv EXPECTED.csv WORK
        with local[2,2], the first patron process of a task is killed; Spark retries the
        task and the result has every row once.
    python3 check_spark.py bench PATRON RUN DATA.parquet WORK
        DataFrame (read from DATA) to written Parquet through Spark local[2], against
        plain `patron predict` of the same file and an identity mapInArrow (Spark's own
        cost); prints one JSON line.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from patron_spark import score  # noqa: E402


def session(master):
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("patron-check")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )


def bank_frame(spark, data):
    import pandas as pd

    rows = pd.read_csv(data)
    rows.insert(0, "customer_id", range(len(rows)))
    return spark.createDataFrame(rows).repartition(5), len(rows)


def expected_scores(path):
    import pandas as pd

    expected = pd.read_csv(path)
    return dict(zip(expected["row"], zip(expected["score"], expected["prediction"])))


def compare(scored, expected, n):
    rows = scored.collect()
    ids = [r["customer_id"] for r in rows]
    assert len(ids) == n, f"{len(ids)} rows scored, {n} sent"
    assert len(set(ids)) == n, "a row was scored twice"
    for r in rows:
        score_, label = expected[r["customer_id"]]
        assert abs(r["score"] - score_) < 2e-6, (r, score_)
        assert r["prediction"] == label, (r, label)


def check_score(patron, run, data, expected_csv, work):
    spark = session("local[2]")
    df, n = bank_frame(spark, data)
    assert df.rdd.getNumPartitions() == 5
    scored = score(df, run, keep=["customer_id", "age"], patron=patron, batch_rows=300)
    names = [f.name for f in scored.schema.fields]
    assert names == ["row", "customer_id", "age", "score", "prediction"], names
    types = [f.dataType.simpleString() for f in scored.schema.fields]
    assert types == ["bigint", "bigint", "bigint", "double", "string"], types
    compare(scored, expected_scores(expected_csv), n)
    # Written as Parquet, the usual end of a scoring job.
    out = os.path.join(work, "scored.parquet")
    scored.write.mode("overwrite").parquet(out)
    assert spark.read.parquet(out).count() == n
    # A column the run needs is missing: the job fails with patron's own message.
    try:
        score(df.drop("age"), run, patron=patron).collect()
    except Exception as e:  # noqa: BLE001 - py4j wraps the task's error
        assert 'input column "age" not found' in str(e), str(e)[-2000:]
    else:
        raise AssertionError("scoring without the age column succeeded")
    spark.stop()
    print(f"ok: {n} rows in 5 partitions scored as patron predict scores them")


def check_retry(patron, run, data, expected_csv, work):
    # Kills the first patron of a task (not the driver's schema probe, batch size 1).
    marker = os.path.join(work, "killed-once")
    wrapper = os.path.join(work, "patron-killed-once")
    with open(wrapper, "w") as f:
        f.write(
            "#!/bin/sh\n"
            'case "$*" in *"--batch-size 1 "*) exec "$PATRON" "$@";; esac\n'
            'if mkdir "$MARKER" 2>/dev/null; then\n'
            '  "$PATRON" "$@" <&0 &\n'
            "  pid=$!\n"
            "  sleep 0.1\n"
            "  kill -9 $pid\n"
            "  wait $pid\n"
            "  exit 137\n"
            "fi\n"
            'exec "$PATRON" "$@"\n'
        )
    os.chmod(wrapper, 0o755)
    os.environ["PATRON"] = patron
    os.environ["MARKER"] = marker
    spark = session("local[2,2]")
    df, n = bank_frame(spark, data)
    scored = score(df, run, keep=["customer_id"], patron=wrapper, batch_rows=300)
    compare(scored, expected_scores(expected_csv), n)
    assert os.path.isdir(marker), "no patron process was killed"
    spark.stop()
    print(f"ok: a killed patron's task was retried; {n} rows, each once")


def bench(patron, run, data, work):
    import pyarrow.parquet as pq

    n = pq.ParquetFile(data).metadata.num_rows
    plain_out = os.path.join(work, "plain.parquet")
    start = time.perf_counter()
    subprocess.run(
        [patron, "predict", "--checkpoint", run, "--input", data, "--output", plain_out],
        check=True,
        capture_output=True,
    )
    plain = time.perf_counter() - start
    spark = session("local[2]")
    df = spark.read.parquet(data)
    out = os.path.join(work, "spark.parquet")
    # The first job also warms the JVM (class loading, JIT); a long job runs warm.
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        score(df, run, patron=patron).write.mode("overwrite").parquet(out)
        seconds.append(time.perf_counter() - start)
    # What Spark alone costs: the same rows through an identity mapInArrow to Parquet.
    start = time.perf_counter()
    df.mapInArrow(lambda batches: batches, df.schema).write.mode("overwrite").parquet(out)
    identity = time.perf_counter() - start
    partitions = df.rdd.getNumPartitions()
    spark.stop()
    print(
        json.dumps(
            {
                "rows": n,
                "partitions": partitions,
                "spark_rows_per_s": round(n / seconds[1]),
                "spark_cold_rows_per_s": round(n / seconds[0]),
                "identity_rows_per_s": round(n / identity),
                "plain_rows_per_s": round(n / plain),
                "vs_plain": round(plain / seconds[1], 3),
            }
        )
    )


def main():
    mode, patron, run = sys.argv[1:4]
    if mode == "bench":
        bench(patron, run, sys.argv[4], sys.argv[5])
        return
    data, expected, work = sys.argv[4:7]
    {"score": check_score, "retry": check_retry}[mode](patron, run, data, expected, work)


if __name__ == "__main__":
    main()
