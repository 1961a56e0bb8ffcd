"""Hypothesis profiles for the unit tests.

``HYPOTHESIS_PROFILE=thorough`` (or ``--hypothesis-profile=thorough``) runs every property
of the unit tests with 2,000 examples instead of its usual few dozen, to find a rare case
before CI does; vary ``--hypothesis-seed`` between runs to explore further.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("thorough", max_examples=2_000, deadline=None, print_blob=True)
if "HYPOTHESIS_PROFILE" in os.environ:
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def examples(usual: int) -> int:
    """A property's usual number of examples, or more when a profile other than the
    default asks for them (an explicit ``max_examples`` would override the profile)."""
    if settings.get_current_profile_name() == "default":
        return usual
    return max(usual, settings().max_examples)
