"""Where a run's start-up goes: wall seconds by phase, JAX's tracing and compilation apart.

A run's start-up is everything between its config and the end of its first training
iteration: Python imports (the first run of a process only), the Hartree-Fock SCF,
pretraining, burn-in, the optimiser's initialisation and the first iteration. Inside those,
JAX traces, lowers and compiles each program on its first call; `StartupClock` takes that
time out of the phase it happened in and reports it as its own phase ``compile``, from the
time spans JAX records for those events (``jax.monitoring``; nested spans counted once).
So the phases add up to the whole start-up, and a warm sweep worker's second trial of the
same shapes shows ``compile`` near zero.
"""

from __future__ import annotations

import contextlib
import threading
import time

# JAX's events for tracing a function to a jaxpr, lowering it, and compiling it with XLA.
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")
PHASES = ("imports", "scf", "pretrain", "burn_in", "optimizer_init", "first_iteration", "compile")
# JAX's events for a compilation that asked the persistent cache, and for one it found there.
CACHE_REQUEST, CACHE_HIT = ("/jax/compilation_cache/compile_requests_use_cache",
                            "/jax/compilation_cache/cache_hits")

_spans: list[tuple[float, float]] = []
_cache = {CACHE_REQUEST: 0, CACHE_HIT: 0}
_lock = threading.Lock()
_listening = False
_imports_reported = False


def _on_span(event: str, start: float, end: float, **_) -> None:
    if event in COMPILE_EVENTS:
        with _lock:
            _spans.append((start, end))


def _on_event(event: str, **_) -> None:
    if event in _cache:
        with _lock:
            _cache[event] += 1


def listen() -> None:
    """Starts recording JAX's compile-event spans and cache events (once per process)."""
    global _listening
    if not _listening:
        import jax.monitoring

        jax.monitoring.register_event_time_span_listener(_on_span)
        jax.monitoring.register_event_listener(_on_event)
        _listening = True


def cache_counts() -> tuple[int, int]:
    """(compilations that asked the persistent cache, of which found there) in this process so far."""
    with _lock:
        return _cache[CACHE_REQUEST], _cache[CACHE_HIT]


def covered(start: float, end: float) -> float:
    """Seconds of [start, end] (time.time()) covered by recorded compile spans."""
    with _lock:
        spans = sorted((max(a, start), min(b, end)) for a, b in _spans if b > start and a < end)
    total, reach = 0.0, start
    for a, b in spans:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def take_import_seconds(imported_at: float | None, now: float) -> float:
    """Import seconds for the first run of the process, 0 for later ones."""
    global _imports_reported
    if _imports_reported or imported_at is None:
        return 0.0
    _imports_reported = True
    return max(0.0, now - imported_at)


class StartupClock:
    """Times the start-up phases of one run; ``seconds()`` is a dict by phase (`PHASES`)."""

    def __init__(self, imports_s: float = 0.0):
        listen()
        self.times = {name: 0.0 for name in PHASES}
        self.times["imports"] = imports_s

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.time()
        try:
            yield
        finally:
            self.add(name, start, time.time())

    def add(self, name: str, start: float, end: float) -> None:
        """Books [start, end] to phase `name`, less the compile time inside it."""
        compiling = covered(start, end)
        self.times[name] += max(0.0, end - start - compiling)
        self.times["compile"] += compiling

    def seconds(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.times.items()}

    def line(self) -> str:
        """One line for the console: total, then each phase."""
        names = {"imports": "imports", "scf": "SCF", "pretrain": "pretraining",
                 "burn_in": "burn-in", "optimizer_init": "optimiser init",
                 "first_iteration": "first iteration", "compile": "tracing+compilation"}
        parts = ", ".join(f"{names[k]} {v:.1f}" for k, v in self.times.items())
        return f"start-up {sum(self.times.values()):.1f} s: {parts} (s)"
