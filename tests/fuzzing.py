"""How hard the Hypothesis and Schemathesis tests try: the same examples on every run in CI (a
run that passed passes again on the same code), a hunt on request.

Every property and fuzz test runs under the profile loaded here (tests/conftest.py loads it
before any test module): derandomized unless FENGQIAO_FUZZ_RANDOM=1 asks for new random
examples; FENGQIAO_FUZZ_EXAMPLES=300 sets the examples of the fuzzers (`fuzz_settings`). What a
hunt finds is fixed with a regression test of its own.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("stable", derandomize=True, database=None)
settings.register_profile("hunt", derandomize=False, database=None)


def load_profile() -> None:
    """Stable unless the environment asks for a hunt."""
    settings.load_profile("hunt" if os.environ.get("FENGQIAO_FUZZ_RANDOM") == "1" else "stable")


def fuzz_settings(examples: int) -> settings:
    """A fuzzer's settings: `examples` per test unless the environment says otherwise."""
    return settings(
        max_examples=int(os.environ.get("FENGQIAO_FUZZ_EXAMPLES", examples)),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
