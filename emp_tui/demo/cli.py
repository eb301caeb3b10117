"""``emp-tui demo`` and ``emp-tui sim``: :func:`main` takes the arguments after ``emp-tui``
(``argv[0]`` is ``demo`` or ``sim``) and returns the exit code.

``demo`` uses the Redis you configured (``--redis-url``, or ``REDIS_URL``/``REDIS_HOST``/...)
when it answers, and otherwise a private redis-server it starts and stops itself; it simulates
the last few minutes of a busy platform (so there is something to find at once), keeps the
services running live, and opens the app on them. Without the app (``--no-app``, or when it
cannot be loaded) it prints a live summary until Ctrl+C.

``sim`` runs the simulated services alone against the configured Redis, for load tests and for
trying the collector: ``--duration``, ``--jobs``, ``--rate``, ``--speed max``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from types import FrameType
from typing import Any, TextIO

import redis
from redis.exceptions import RedisClusterException

from emp_tui.config import redacted_url
from emp_tui.demo.embedded import EmbeddedRedis, EmbeddedRedisError
from emp_tui.demo.model import FaultRates, SimConfig
from emp_tui.demo.scenarios import SCENARIOS, apply_scenario
from emp_tui.demo.sim import Simulation
from emp_tui.env import redis_url_from_env, stream_from_env
from emp_tui.topology import client_for_url

_REDIS_ENV = ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB")


def _speed(text: str) -> float | None:
    if text.strip().lower() in ("max", "inf", "fast"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a speed: a factor > 0, or 'max'")
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emp-tui")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,sim}")
    demo = commands.add_parser(
        "demo",
        help="simulated EMP services over a real Redis, shown in the app",
        description="Simulated EMP services over a real Redis, shown in the app. Uses the "
        "Redis you configured (--redis-url, REDIS_URL, REDIS_HOST) when it answers, else "
        "starts a private redis-server and stops it on exit.",
    )
    sim = commands.add_parser(
        "sim",
        help="the simulated services alone, against any Redis (load tests, the collector)",
        description="The simulated EMP services alone, against the configured Redis "
        "(--redis-url, REDIS_URL, REDIS_HOST; default localhost:6379).",
    )
    for sub, scenario_default in ((demo, "mixed"), (sim, None)):
        sub.add_argument(
            "--redis-url",
            help="the Redis to use (redis://, rediss://, unix://, or redis+cluster://host:port "
            "for a Redis Cluster)",
        )
        sub.add_argument(
            "--stream", help="the stream key (default: EMP_EVENTS_STREAM or emp:events)"
        )
        sub.add_argument(
            "--scenario",
            default=scenario_default,
            choices=sorted(SCENARIOS),
            metavar="NAME",
            help=f"plant one deterministic story (default: {scenario_default or 'none'}); "
            "see --list-scenarios",
        )
        sub.add_argument("--list-scenarios", action="store_true", help="list the scenarios")
        sub.add_argument("--seed", type=int, help="make the run reproducible (default: random)")
        sub.add_argument(
            "--rate", type=_positive(float), default=40.0, help="events per second (default: 40)"
        )
        sub.add_argument(
            "--faults",
            metavar="SPEC",
            help="fault rates, e.g. 'stall=0.05,worker_crash=0.01' (per job; service_failure "
            "per machine start; burst per minute). Known: " + ", ".join(FaultRates.names()),
        )
        sub.add_argument("--no-faults", action="store_true", help="no random faults")
        sub.add_argument(
            "--speed",
            type=_speed,
            default=1.0,
            help="simulated time per real time: 1 (default), 10, or 'max' (as fast as possible)",
        )
    demo.add_argument("--embedded", action="store_true", help="always use a private redis-server")
    demo.add_argument(
        "--no-app", action="store_true", help="print a live summary instead of the app"
    )
    demo.add_argument(
        "--history",
        type=float,
        default=45.0,
        metavar="SECONDS",
        help="simulate this much of the past first, so there is something to see (default: 45)",
    )
    sim.add_argument(
        "--duration",
        type=_positive(float),
        metavar="SECONDS",
        help="stop after this much simulated time",
    )
    sim.add_argument(
        "--jobs", type=_positive(int), metavar="N", help="stop once N jobs are created and done"
    )
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else 2
    if args.list_scenarios:
        for name, scenario in SCENARIOS.items():
            print(f"{name:18} {scenario.summary}")
        return 0
    try:
        config = _config(args)
    except ValueError as exc:
        print(f"emp-tui {args.command}: {exc}", file=sys.stderr)
        return 2
    with _stop_on_signals():
        if args.command == "demo":
            return run_demo(args, config)
        return run_sim(args, config)


def _config(args: argparse.Namespace) -> SimConfig:
    explicit_story = args.scenario not in (None, "mixed")
    faults = FaultRates.none() if args.no_faults or explicit_story else FaultRates()
    if args.faults:
        faults = faults.updated(args.faults)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 100_000)
    return SimConfig(seed=seed, rate=args.rate, faults=faults)


def _simulation(
    args: argparse.Namespace, url: str, stream: str, config: SimConfig, **options: Any
) -> Simulation:
    """The simulation, with the scenario of the command line planted in it."""
    sim = Simulation(url, stream, config, **options)
    if args.scenario:
        apply_scenario(sim, args.scenario)
    return sim


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the demo the way Ctrl+C does, so its cleanup runs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl+C too, even when started with SIGINT ignored (a background job of a script).
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(text: str, out: TextIO | None = None) -> None:
    print(text, file=out or sys.stdout, flush=True)


def _unreachable(url: str, timeout: float = 1.0) -> str | None:
    """Why the Redis at ``url`` does not answer a PING, or None when it does."""
    try:
        with client_for_url(url, socket_connect_timeout=timeout, socket_timeout=timeout) as client:
            client.ping()
    except (redis.RedisError, OSError, ValueError, RedisClusterException) as exc:
        return str(exc) or type(exc).__name__
    return None


def _configured_redis(args: argparse.Namespace) -> str | None:
    if args.redis_url:
        return str(args.redis_url)
    if any(os.environ.get(name, "").strip() for name in _REDIS_ENV):
        return redis_url_from_env()
    return None


def _story_lines(sim: Simulation) -> None:
    for line in sim.story_lines:
        _say(f"  story: {line}")


def run_demo(args: argparse.Namespace, config: SimConfig) -> int:
    embedded: EmbeddedRedis | None = None
    sim: Simulation | None = None
    stop = threading.Event()
    live: threading.Thread | None = None
    stream = args.stream or stream_from_env()
    try:
        url = None if args.embedded else _configured_redis(args)
        if url is not None:
            why = _unreachable(url)
            if why is None:
                _say(f"emp-tui demo: using your Redis at {redacted_url(url)}, stream {stream}")
            else:
                _say(
                    f"emp-tui demo: Redis at {redacted_url(url)} does not answer ({why}); "
                    "starting a private redis-server instead"
                )
                url = None
        if url is None:
            embedded = EmbeddedRedis().start()
            url = embedded.url
            _say(
                f"emp-tui demo: started redis-server (pid {embedded.pid}) on {url}; "
                "it stops when the demo does"
            )
        history_ms = max(0, int(args.history * 1000))
        sim = _simulation(
            args, url, stream, config, start_ms=time.time_ns() // 1_000_000 - history_ms
        )
        _say(
            f"emp-tui demo: seed {config.seed}, scenario {args.scenario or 'none'}, "
            f"~{config.rate:g} events/s; simulating the last {history_ms / 1000:g} s first"
        )
        if history_ms:
            sim.run(until_ms=sim.start_ms + history_ms)
            sim.flush(timeout=10.0)  # the app opens on the whole history
            if sim.error:
                _say(f"emp-tui demo: {sim.error}", sys.stderr)
                return 1
        _story_lines(sim)
        live = threading.Thread(
            target=sim.run,
            kwargs={"speed": args.speed, "stop": stop},
            name="emp-demo-sim",
            daemon=True,
        )
        live.start()
        open_app = None
        if not args.no_app:
            open_app, why_not = _load_app()
            if open_app is None:
                _say(
                    f"emp-tui demo: the app is not available ({why_not}); "
                    "showing a live summary instead"
                )
        if open_app is not None:
            code = open_app(url, stream)
            if sim.error:
                _say(f"emp-tui demo: {sim.error}", sys.stderr)
            return code
        _say("emp-tui demo: running; Ctrl+C stops it")
        _watch(sim, live)
        if sim.error:
            _say(f"emp-tui demo: {sim.error}", sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        return 0
    except EmbeddedRedisError as exc:
        _say(f"emp-tui demo: {exc}", sys.stderr)
        return 1
    finally:
        _shutdown(stop, live, sim, embedded)


def run_sim(args: argparse.Namespace, config: SimConfig) -> int:
    url = str(args.redis_url or redis_url_from_env())
    stream = args.stream or stream_from_env()
    why = _unreachable(url, timeout=2.0)
    if why is not None:
        _say(f"emp-tui sim: Redis at {redacted_url(url)} does not answer: {why}", sys.stderr)
        return 1
    if args.jobs:
        config = replace(config, max_jobs=args.jobs)
    sim = _simulation(args, url, stream, config)
    stop = threading.Event()
    until = sim.start_ms + int(args.duration * 1000) if args.duration else None
    _say(
        f"emp-tui sim: Redis {redacted_url(url)}, stream {stream}, seed {config.seed}, "
        f"scenario {args.scenario or 'none'}, ~{config.rate:g} events/s, "
        f"speed {args.speed or 'max'}"
    )
    _story_lines(sim)
    live = threading.Thread(
        target=sim.run,
        kwargs={"speed": args.speed, "stop": stop, "until_ms": until},
        name="emp-sim",
        daemon=True,
    )
    started = time.monotonic()
    try:
        live.start()
        _watch(sim, live)
    except KeyboardInterrupt:
        pass
    finally:
        _shutdown(stop, live, sim, None)
    took = time.monotonic() - started
    _say(f"emp-tui sim: done: {_summary(sim, sim.events / took if took > 0 else 0.0)}")
    if sim.unsent:
        _say(f"emp-tui sim: {sim.unsent} events could not be sent", sys.stderr)
    if sim.error:
        _say(f"emp-tui sim: {sim.error}", sys.stderr)
        return 1
    return 0


AppOpener = Callable[[str, str], int]  # (redis_url, stream) -> exit code


def _load_app() -> tuple[AppOpener | None, str]:
    """How to open the app on a Redis and stream, or None and why it cannot be loaded."""
    try:
        module = importlib.import_module("emp_tui.app")
    except ImportError as exc:
        return None, str(exc)
    make_app = getattr(module, "make_app", None)
    if callable(make_app):
        return partial(_run_app_made_by, make_app), ""
    run_app = getattr(module, "run_app", None)
    if callable(run_app):

        def open_app(url: str, stream: str) -> int:
            return int(run_app(redis_url=url, stream=stream, files=[], job_id=None, query=None))

        return open_app, ""
    return None, "emp_tui.app has neither make_app nor run_app"


def _run_app_made_by(make_app: Callable[..., Any], url: str, stream: str) -> int:
    """Run the app as run_app does, but holding it, so that SIGTERM and SIGHUP can ask it to
    exit the way its quit key does (restoring the terminal) instead of interrupting it."""
    try:
        app = make_app(redis_url=url, stream=stream, files=[], job_id=None, query=None)
    except ValueError as exc:  # the app's ConfigError: a bad config.toml
        _say(f"emp-tui demo: {exc}", sys.stderr)
        return 2

    def exit_app(signum: int, frame: FrameType | None) -> None:
        # call_from_thread must not run on the app's own thread, which this handler is on.
        threading.Thread(
            target=_ask_to_exit, args=(app,), name="emp-demo-exit", daemon=True
        ).start()

    main = threading.current_thread() is threading.main_thread()
    hangups = (signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, exit_app) for sig in hangups} if main else {}
    try:
        result = app.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return result if isinstance(result, int) else int(getattr(app, "return_code", 0) or 0)


def _ask_to_exit(app: Any, patience: float = 5.0) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            app.call_from_thread(app.exit)
            return
        except RuntimeError:  # not running yet, or not any more
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def _summary(sim: Simulation, rate: float) -> str:
    faults = ", ".join(f"{name} {n}" for name, n in sim.faults.items() if n)
    line = (
        f"{sim.events} events ({rate:.0f}/s) | jobs {sim.jobs_created} created, "
        f"{sim.jobs_completed} completed, {sim.jobs_failed} failed, {len(sim.open_jobs)} open | "
        f"faults {sum(sim.faults.values())}" + (f" ({faults})" if faults else "")
    )
    problem = sim.redis_problem
    if problem is not None:
        line += f" | waiting for Redis: {problem}"
    elif sim.reconnects:
        line += f" | Redis reconnected {sim.reconnects}x"
    return line


def _watch(sim: Simulation, live: threading.Thread, interval: float = 2.0) -> None:
    """Print a summary every ``interval`` seconds until the simulation ends."""
    tty = sys.stdout.isatty()
    last_events, last_time = sim.events, time.monotonic()
    while live.is_alive():
        live.join(interval)
        now = time.monotonic()
        rate = (sim.events - last_events) / max(1e-9, now - last_time)
        last_events, last_time = sim.events, now
        line = time.strftime("%H:%M:%S ") + _summary(sim, rate)
        if tty:
            sys.stdout.write("\r\x1b[K" + line)
            sys.stdout.flush()
        else:
            _say(line)
    if tty:
        sys.stdout.write("\n")


def _shutdown(
    stop: threading.Event,
    live: threading.Thread | None,
    sim: Simulation | None,
    embedded: EmbeddedRedis | None,
) -> None:
    """Stop the services, send what they buffered, and stop the embedded server. A second
    Ctrl+C must not cut this short and leave a redis-server behind."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        stop.set()
        if live is not None:
            live.join(timeout=10)
        if sim is not None:
            sim.close(timeout=2.0)
    finally:
        if embedded is not None:
            embedded.stop()
        if main:
            signal.signal(signal.SIGINT, previous)
