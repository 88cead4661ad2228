"""A config problem: the dotted keys involved and one sentence saying what is wrong and what to do
(the loader prefixes the file or `--set` the value came from, `msdetr.config.origins`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """keys: the dotted keys involved, the one to fix first; message: what is wrong and what to do."""

    keys: tuple[str, ...]
    message: str


def out_of_range(key: str, value: object, expected: str) -> Problem:
    return Problem((key,), f"{key} is {value!r}; it must be {expected}")


def ranges(checks: list[tuple[bool, str, object, str]]) -> list[Problem]:
    return [out_of_range(key, value, expected) for ok, key, value, expected in checks if not ok]


def is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


EXTRA_QUERIES_TOGETHER = "the extra queries and their supervision are enabled together (set both or neither)"


def together(model_key: str, model_on: bool, loss_key: str, loss_on: bool,
             what: str = EXTRA_QUERIES_TOGETHER) -> list[Problem]:
    """A model part and its supervision that must be enabled together: [] when they agree."""
    if model_on == loss_on:
        return []
    return [Problem(
        (model_key.split(" ")[0], loss_key),
        f"{model_key} is {str(model_on).lower()} but {loss_key} is {str(loss_on).lower()}; {what}",
    )]
