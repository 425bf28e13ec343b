"""The embedded default: MLPerf LoadGen (PyPI mlcommons-loadgen) in process, over a Python system under test.

LoadGen writes its own mlperf_log_* files into the case's folder, laid out like a published results tree
(<system name>/<benchmark>/<Scenario>/{performance/run_1,accuracy}); the same parsers and verdicts that judge
NVIDIA's results judge these. Settings come from a user.conf written beside the logs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..catalog import Catalog, InferenceCase, TrainingCase
from ..judge.verdict import RUNS_FOR_A_SCORE
from ..logs.loadgen import LoadgenDetail, parse_detail
from ..options import Duration, Options
from ..options import duration as parse_duration
from . import Artifacts, BackendBase, BackendUnavailable, BuildContext, Case, ResultMissing
from .search import (
    LOCAL_METHOD,
    SEARCH,
    SearchBounds,
    confirm,
    find_peak,
    holds,
    search_bounds,
    search_record,
    write_search,
)
from .standin import LocalModel, stand_in_for

LOCAL_SYSTEM_ID = "Local-CPU"
# Server runs at this fraction of the throughput the probe measured, so an idle machine keeps its latency.
SERVER_LOAD = 0.4
# When LoadGen finds the chosen Server load broke the latency bound (a shared machine slowed down under the run),
# the run is repeated at a quarter of the load, at most this often; every attempt is kept under _probes/.
# A target QPS the user set is never changed.
SERVER_RETRIES = 2
SERVER_BACKOFF = 4.0
MULTISTREAM_SAMPLES = 8
# LoadGen pre-generates every query of a SingleStream/MultiStream run: 2 x min_duration / expected latency of
# them, and stops issuing once min_duration and min_query_count are met. The expected latency we give it is this
# fraction of the fastest the probe saw, so a run may go 4x faster than the probe's best before it runs out.
STREAM_LATENCY_MARGIN = 0.5
# LoadGen keeps about this much per pre-generated query (measured with mlcommons-loadgen 6.0: ~300 bytes for one
# sample, ~40 more per extra sample); the expected latency is floored so a long run never pre-generates more than
# GENERATION_BUDGET_BYTES of them.
QUERY_BYTES, EXTRA_SAMPLE_BYTES = 300, 40
GENERATION_BUDGET_BYTES = 1 << 30
# Offline's single query is sized from the LoadGen probe's rate, 1.35x over; never below this share of the
# model's fastest batch, so a probe that ran while the machine was busy cannot size the run short by itself.
OFFLINE_MARGIN = 1.35
OFFLINE_PEAK_SHARE = 0.8
# A run that ran out of the work LoadGen pre-generated before min_duration (the SUT went faster than our
# expectations, while every other constraint held) is our sizing error, not the SUT's: it is kept under
# _probes/ and run again, sized from what LoadGen measured, at most this often.
SIZING_RERUNS = 2
# The fewest queries LoadGen's early-stopping estimate accepts at its default percentiles (SingleStream 90th,
# MultiStream and Server 99th), as its own early_stopping_result says; a short run asks for at least these,
# so a slow SUT runs longer instead of failing early stopping for a query count we chose.
EARLY_STOPPING_MIN_QUERIES = {"SingleStream": 64, "MultiStream": 662, "Server": 459}
SMOKE_MIN_QUERIES = 100
RAN_OUT = "Ran out of generated queries"


@dataclass(frozen=True)
class Calibration:
    """What a short probe of the model measured, to set LoadGen's expectations near the truth."""

    throughput: float  # samples per second at the model's batch size, model alone, over the probe window
    latency_single: float  # the fastest seconds for one sample the probe saw
    latency_multi: float  # the fastest seconds for a MultiStream query the probe saw
    offline_throughput: float | None = None  # samples per second LoadGen measured in a short Offline probe
    peak_throughput: float | None = None  # samples per second of the probe's fastest batch

    @property
    def offline(self) -> float:
        return self.offline_throughput or self.throughput


def _fastest(call: Callable[[], object], repeats: int, budget: float = 0.3) -> float:
    """The shortest of up to `repeats` timed calls (at least three, then until `budget` seconds are spent).
    A busy neighbour only ever makes a call slower, so the fastest call is the measure it disturbs least."""
    best, spent = float("inf"), 0.0
    for done in range(repeats):
        begin = time.perf_counter()
        call()
        took = time.perf_counter() - begin
        best, spent = min(best, took), spent + took
        if done >= 2 and spent > budget:
            break
    return best


def calibrate(model: LocalModel, seconds: float = 0.5) -> Calibration:
    batch = np.arange(min(model.batch_size, model.performance_samples))
    warm_until = time.perf_counter() + 0.2  # the BLAS thread pool and caches warm up first
    while time.perf_counter() < warm_until:
        model.predict(batch)
    done, fastest_batch, start = 0, float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        model.predict(batch)
        fastest_batch = min(fastest_batch, time.perf_counter() - begin)
        done += len(batch)
    throughput = done / (time.perf_counter() - start)
    single = _fastest(lambda: model.predict(np.arange(1)), 50)
    multi = _fastest(lambda: model.predict(np.arange(min(MULTISTREAM_SAMPLES, model.performance_samples))), 20)
    return Calibration(throughput, single, multi, peak_throughput=len(batch) / fastest_batch)


def _stream_latency_ms(latency: float, samples_per_query: int, duration_ms: int) -> float:
    """LoadGen's expected latency for a SingleStream/MultiStream run: STREAM_LATENCY_MARGIN of the fastest seen,
    floored so the queries it pre-generates (2 x duration / latency) fit GENERATION_BUDGET_BYTES."""
    per_query = QUERY_BYTES + EXTRA_SAMPLE_BYTES * (samples_per_query - 1)
    floor_ms = 2 * duration_ms * per_query / GENERATION_BUDGET_BYTES
    return max(latency * STREAM_LATENCY_MARGIN * 1000, floor_ms, 0.001)


def user_conf(
    case: InferenceCase, model: LocalModel, cal: Calibration, seconds: int | None, server_target_qps: float | None
) -> str:
    """LoadGen's user.conf for one run: the round's rules (full) or a short run (smoke), with expectations
    from the probe so LoadGen pre-generates about as many queries as the run needs (its memory grows with
    them)."""
    scenario = case.scenario
    key = f"*.{scenario.name}"
    duration_ms = scenario.min_duration_ms if seconds is None else seconds * 1000
    if seconds is None:
        min_queries = scenario.min_query_count
    elif scenario.name == "Offline":
        min_queries = 1
    else:
        min_queries = max(SMOKE_MIN_QUERIES, EARLY_STOPPING_MIN_QUERIES[scenario.name])
    lines = [
        f"# written by pytest-mlperf for {case.config_name} ({'full rules' if seconds is None else 'smoke'})",
        f"{key}.min_duration = {duration_ms}",
        f"{key}.min_query_count = {min_queries}",
        f"*.*.performance_sample_count_override = {model.performance_samples}",
    ]
    if scenario.name == "Offline":
        # LoadGen sizes the single Offline query from this: a little above what the LoadGen probe measured,
        # so the run fills min_duration even when it goes somewhat faster than the probe did.
        expected = max(cal.offline * OFFLINE_MARGIN, (cal.peak_throughput or 0.0) * OFFLINE_PEAK_SHARE)
        if seconds is None:
            expected = max(expected, scenario.min_sample_count * 1000.0 / duration_ms)
        lines.append(f"{key}.target_qps = {expected:.3f}")
    elif scenario.name == "Server":
        target = server_target_qps if server_target_qps else cal.throughput * SERVER_LOAD
        latency_ms = case.benchmark.server_latency_ms or 100
        lines += [f"{key}.target_qps = {target:.3f}", f"{key}.target_latency = {latency_ms}"]
    elif scenario.name == "SingleStream":
        lines.append(f"{key}.target_latency = {_stream_latency_ms(cal.latency_single, 1, duration_ms):.6f}")
    elif scenario.name == "MultiStream":
        latency_ms = _stream_latency_ms(cal.latency_multi, MULTISTREAM_SAMPLES, duration_ms)
        lines += [f"{key}.target_latency = {latency_ms:.6f}", f"{key}.samples_per_query = {MULTISTREAM_SAMPLES}"]
    return "\n".join(lines) + "\n"


def resized_after_short_run(case: InferenceCase, detail: LoadgenDetail, cal: Calibration) -> Calibration | None:
    """A calibration sized from what LoadGen measured, when a performance run ran out of the work LoadGen
    pre-generated before min_duration while every other constraint held; None for any other outcome.

    Running out is only possible for a SUT faster than our expectations (a slow one reaches min_duration first),
    so it is our sizing error and never hides a slow system. SingleStream/MultiStream: LoadGen says so itself
    (error_runtime "Ran out of generated queries"); a short run's early-stopping shortfall is a consequence of
    its query count, so only the performance constraints must hold. Offline: the single query ended before
    min_duration with every other flag met."""
    if case.mode != "PerformanceOnly" or case.scenario.name == "Server":
        return None
    if case.scenario.name == "Offline":
        short = detail.get("result_min_duration_met") is False and all(
            met for key, met in detail.flags.items() if key != "result_min_duration_met"
        )
        rate = _positive(detail.get("result_samples_per_second"))
        if not short or rate is None:
            return None
        return replace(cal, offline_throughput=max(rate, cal.offline))
    if not any(RAN_OUT in error for error in detail.errors) or detail.get("result_perf_constraints_met") is False:
        return None
    if case.scenario.name == "SingleStream":
        fastest = _positive(detail.get("result_min_latency_ns"))
        return replace(cal, latency_single=min(cal.latency_single, fastest / 1e9)) if fastest else None
    fastest = _positive(detail.get("result_min_query_latency_ns"))
    return replace(cal, latency_multi=min(cal.latency_multi, fastest / 1e9)) if fastest else None


def _positive(value) -> float | None:
    """A finite positive number read from a log, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def single_blas_thread(model: LocalModel) -> AbstractContextManager:
    """Stand-ins compute on one BLAS thread while the backend drives them (probes and LoadGen runs alike).

    Their matrices are small, and a pool of BLAS threads waits on each other: beside one busy neighbour on a
    two-core machine, the same stand-in's probe swung 2-3x between calls on OpenBLAS's default two threads, and
    stayed within a few per cent, and faster, on one. A model of the user's own keeps whatever threading it has."""
    if not model.stand_in:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class _Worker:
    """The system under test: LoadGen's issue call queues samples; one thread batches and answers them."""

    def __init__(self, model: LocalModel):
        import mlperf_loadgen as lg

        self.lg = lg
        self.model = model
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="mlperf-local-sut", daemon=True)
        self.thread.start()

    def issue(self, samples) -> None:
        self.queue.put(list(samples))

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            item = self.queue.get()
            if item is None:
                return
            pending = item
            while len(pending) < self.model.batch_size:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                pending += more
            try:
                self._answer(pending)
            except BaseException as exc:  # noqa: BLE001 - reported after the run, never swallowed
                self.error = exc
                self._answer_empty(pending)

    def _answer(self, samples) -> None:
        lg, size = self.lg, self.model.batch_size
        for start in range(0, len(samples), size):
            chunk = samples[start : start + size]
            outputs = self.model.predict(np.fromiter((s.index for s in chunk), dtype=np.int64, count=len(chunk)))
            outputs = [np.ascontiguousarray(o) for o in outputs]
            responses = [
                lg.QuerySampleResponse(s.id, o.ctypes.data, o.nbytes) for s, o in zip(chunk, outputs, strict=True)
            ]
            lg.QuerySamplesComplete(responses)

    def _answer_empty(self, samples) -> None:
        # A failing model must not hang LoadGen: answer with no data, then fail the case.
        self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, 0, 0) for s in samples])


_RUN_LOCK = threading.Lock()  # LoadGen keeps process-wide state: one test at a time per process


@contextmanager
def visible_gpu(index: int | None) -> Iterator[None]:
    """CUDA_VISIBLE_DEVICES names only the case's GPU while it runs (nothing changes for a case on all GPUs)."""
    if index is None:
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def run_loadgen(case: InferenceCase, model: LocalModel, folder: Path, conf_text: str) -> None:
    import mlperf_loadgen as lg

    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "user.conf"
    conf.write_text(conf_text)
    settings = lg.TestSettings()
    status = settings.FromConfig(str(conf), case.benchmark.model, case.scenario.name)
    if status != 0:
        raise BackendUnavailable(f"LoadGen rejected {conf} (FromConfig returned {status})")
    settings.scenario = getattr(lg.TestScenario, case.scenario.name)
    settings.mode = getattr(lg.TestMode, case.mode)
    output = lg.LogOutputSettings()
    output.outdir = str(folder)
    output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    log_settings.enable_trace = False
    with _RUN_LOCK:
        worker = _Worker(model)
        sut = lg.ConstructSUT(worker.issue, worker.flush)
        qsl = lg.ConstructQSL(model.total_samples, model.performance_samples, model.load, lambda _: None)
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
        finally:
            worker.stop()
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
    if worker.error is not None:
        raise RuntimeError(f"the model failed during the LoadGen run: {worker.error!r}") from worker.error


def write_accuracy(folder: Path, model: LocalModel) -> Path:
    """The accuracy script: mlperf_log_accuracy.json -> the model's score -> accuracy.txt (with hash=)."""
    log = folder / "mlperf_log_accuracy.json"
    raw = log.read_bytes()
    responses = {int(r["qsl_idx"]): bytes.fromhex(r["data"]) for r in json.loads(raw)}
    report = model.score(responses)
    path = folder / "accuracy.txt"
    path.write_text("\n".join([*report.lines, f"hash={hashlib.sha256(raw).hexdigest()}"]) + "\n")
    return path


class LocalBackend(BackendBase):
    name = "local"
    needs_gpu = False

    def __init__(
        self,
        catalog: Catalog,
        output: Path | Callable[[], Path] | None,
        duration: Duration | str = "smoke",
        server_target_qps: float | None = None,
        make_model: Callable[[Case], LocalModel | None] | None = None,
        train_max_steps: int | None = None,
        nexp: int | None = None,
        search: SearchBounds | None = None,
        search_step_seconds: int = 5,
    ):
        try:
            import mlperf_loadgen  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(f"the local backend needs mlcommons-loadgen ({exc})") from None
        super().__init__(output)
        self.catalog = catalog
        self.train_max_steps = train_max_steps
        # Training trials per run: by default the runs an MLPerf BERT score needs (a stand-in trial takes seconds).
        self.nexp = nexp if nexp is not None else RUNS_FOR_A_SCORE
        self.duration = duration if isinstance(duration, Duration) else parse_duration(duration)
        self.seconds = self.duration.seconds
        self.server_target_qps = server_target_qps
        self.make_model = make_model
        self.search = search  # Server cases search their peak load (--mlperf-server-search)
        self.search_step_seconds = search_step_seconds
        self._models: dict[str, LocalModel] = {}
        self._calibrations: dict[str, Calibration] = {}

    @classmethod
    def build(cls, options: Options, context: BuildContext) -> LocalBackend:
        return cls(
            context.catalog,
            context.output,
            options.duration,
            options.server_target_qps,
            context.make_model,
            options.train_max_steps,
            options.nexp,
            search_bounds(options),
            options.search_step_seconds,
        )

    def describe(self) -> str:
        return "LoadGen runs stand-in models on this machine's CPU, not the MLPerf models"

    # ---- case lists -------------------------------------------------------------------------------------
    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        if kind == "training":
            sku = catalog_cases[0].sku if catalog_cases else None
            return [
                TrainingCase(
                    config=None,
                    sku=sku,
                    target=self.catalog.training_target,
                    recipe="local-mlm",
                    trial=f"trial_{i}",
                    group="local-mlm",
                )
                for i in range(1, self.nexp + 1)
            ]
        if catalog_cases is None:
            return self.catalog.local_cases(LOCAL_SYSTEM_ID)
        seen, out = set(), []
        for case in catalog_cases:
            # NVIDIA's harness choice means nothing here: one local case per benchmark x scenario x mode.
            local = case.with_(harness="local")
            if local.id not in seen:
                seen.add(local.id)
                out.append(local)
        return out

    # ---- running one case -------------------------------------------------------------------------------
    @staticmethod
    def _key(case: InferenceCase) -> str:
        """Models and their calibration are per benchmark, and per GPU for a case pinned to one."""
        return case.benchmark.name if case.gpu is None else f"{case.benchmark.name}@gpu{case.gpu}"

    def model_for(self, case: InferenceCase) -> LocalModel:
        key = self._key(case)
        if key not in self._models:
            model = self.make_model(case) if self.make_model else None
            try:
                self._models[key] = model if model is not None else stand_in_for(case.benchmark)
            except LookupError as exc:
                raise ResultMissing(str(exc)) from None
        return self._models[key]

    def _calibration(self, case: InferenceCase, model: LocalModel) -> Calibration:
        """Probe the model alone; for Offline also through LoadGen's Offline path for about a second: the
        model alone can run at a different rate than under LoadGen, and an Offline run must not run short."""
        key = self._key(case)
        if key not in self._calibrations:
            self._calibrations[key] = calibrate(model)
        cal = self._calibrations[key]
        if case.scenario.name == "Offline" and cal.offline_throughput is None:
            probe_case = case.with_(scenario=self.catalog.scenario("Offline"), mode="PerformanceOnly")
            folder = self.output / "_probes" / key
            if folder.exists():
                shutil.rmtree(folder)
            conf = user_conf(probe_case, model, cal, 1, None).replace("# written", "# probe run, written")
            run_loadgen(probe_case, model, folder, conf)
            measured = parse_detail(folder / "mlperf_log_detail.txt").get("result_samples_per_second")
            self._calibrations[key] = replace(cal, offline_throughput=float(measured) if measured else None)
        return self._calibrations[key]

    @staticmethod
    def _overloaded_server_rate(case: InferenceCase, detail: LoadgenDetail) -> float | None:
        """The QPS a Server run scheduled, when LoadGen found that load broke the latency bound: its 99th
        percentile over the bound, or too many over-latency queries for early stopping's estimate (the run
        always has early stopping's minimum query count, so that shortfall is never the count's)."""
        if case.scenario.name != "Server" or case.mode != "PerformanceOnly":
            return None
        if detail.get("result_perf_constraints_met") is not False and detail.get("early_stopping_met") is not False:
            return None
        return _positive(detail.get("result_scheduled_samples_per_sec"))

    def _keep_attempt(self, case: InferenceCase, folder: Path, name: str) -> Path:
        kept = self.output / "_probes" / self._key(case) / name
        if kept.exists():
            shutil.rmtree(kept)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(kept))
        return kept

    @staticmethod
    def _run(case: InferenceCase, model: LocalModel, folder: Path, conf: str) -> LoadgenDetail | None:
        """One LoadGen run; its detail log, parsed, for a performance run (what the sizing checks read)."""
        run_loadgen(case, model, folder, conf)
        return parse_detail(folder / "mlperf_log_detail.txt") if case.mode == "PerformanceOnly" else None

    def _searched(self, case: InferenceCase, model: LocalModel, cal: Calibration, folder: Path) -> Artifacts:
        """The Server peak: short runs at fixed loads from the probe's (or --mlperf-server-target-qps), each kept
        under _search/, then the run of the configured duration at the peak, whose logs are the case's."""
        steps = self.output / "_search" / self._key(case)
        if steps.exists():
            shutil.rmtree(steps)

        def run_at(qps: float) -> bool:
            where = steps / f"step-{len(found_steps) + 1:02d}-{qps:.1f}qps"
            found_steps.append(where)
            conf = user_conf(case, model, cal, self.search_step_seconds, qps)
            return holds(self._run(case, model, where, conf))

        found_steps: list[Path] = []
        start = self.server_target_qps or cal.throughput * SERVER_LOAD
        found = find_peak(run_at, start, self.search)

        def run_full(load: float) -> bool:  # the case's own run, in its folder
            return self._run(case, model, folder, user_conf(case, model, cal, self.seconds, load)).validity == "VALID"

        load, tries = confirm(found, run_full)
        method = LOCAL_METHOD
        search = search_record(found, method, start, load, tries, steps_folder=str(steps))
        write_search(folder / SEARCH, search)  # beside the logs it explains, where the judge and the CLI read it
        info = {
            "model": model.name,
            "stand_in": model.stand_in,
            "probe_samples_per_second": round(cal.throughput, 1),
            "duration": self.duration.text,
        }
        return Artifacts(folder, files=[folder / "user.conf"], info=info)

    def folder_for(self, case: InferenceCase) -> Path:
        return self.output / case.output_dir

    def run(self, case: Case, workdir: Path) -> Artifacts:
        if isinstance(case, TrainingCase):
            from .local_training import MAX_STEPS, run_training

            folder = self.output / f"{LOCAL_SYSTEM_ID}_Local" / "bert"
            return run_training(case, folder, max_steps=self.train_max_steps or MAX_STEPS)
        with visible_gpu(case.gpu):  # a user's model (pytest_mlperf_make_sut) is made and run on the case's GPU
            model = self.model_for(case)
            with single_blas_thread(model):
                return self._run_inference(case, model)

    def _run_inference(self, case: InferenceCase, model: LocalModel) -> Artifacts:
        folder = self.folder_for(case)
        if folder.exists():
            shutil.rmtree(folder)
        cal = self._calibration(case, model)
        if self.search is not None and case.scenario.name == "Server" and case.mode == "PerformanceOnly":
            return self._searched(case, model, cal, folder)
        server_qps = self.server_target_qps
        detail = self._run(case, model, folder, user_conf(case, model, cal, self.seconds, server_qps))
        sizing_reruns: list[str] = []
        while len(sizing_reruns) < SIZING_RERUNS and (resized := resized_after_short_run(case, detail, cal)):
            # LoadGen ran out of the work it pre-generated before min_duration: the SUT went faster than our
            # probes said, a sizing error of ours, not the SUT's. Keep that attempt with the probes and run again,
            # sized from what LoadGen just measured (later cases of this benchmark keep the new sizing).
            name = f"{case.scenario.name.lower()}-short-run-{len(sizing_reruns) + 1}"
            sizing_reruns.append(str(self._keep_attempt(case, folder, name)))
            cal = self._calibrations[self._key(case)] = resized
            detail = self._run(case, model, folder, user_conf(case, model, cal, self.seconds, server_qps))
        server_attempts: list[str] = []
        while (
            self.server_target_qps is None
            and len(server_attempts) < SERVER_RETRIES
            and (tried := self._overloaded_server_rate(case, detail)) is not None
        ):
            # The load we chose broke the latency bound: choosing it is our job, as it is the submitter's on a
            # real system. Keep the attempt (its logs say what happened) and run again at a lighter load; the
            # verdict is LoadGen's on the last run, and a machine that cannot hold even that stays INVALID.
            kept = self._keep_attempt(case, folder, f"server-attempt-{len(server_attempts) + 1}")
            server_attempts.append(str(kept))
            server_qps = tried / SERVER_BACKOFF
            detail = self._run(case, model, folder, user_conf(case, model, cal, self.seconds, server_qps))
        files = [folder / "user.conf"]
        if case.mode == "AccuracyOnly":
            write_accuracy(folder, model)
            files.append(folder / "mlperf_log_accuracy.json")
        info = {
            "model": model.name,
            "sizing_reruns_kept": sizing_reruns,
            "server_attempts_kept": server_attempts,
            "stand_in": model.stand_in,
            "probe_samples_per_second": round(cal.throughput, 1),
            "probe_loadgen_offline_samples_per_second": round(cal.offline, 1),
            "duration": self.duration.text,
        }
        return Artifacts(folder, files=files, info=info)
