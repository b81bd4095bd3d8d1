"""Game filters: pure predicates over PGN headers, each returning a rejection reason or None.

The header pre-filter runs before a single move is parsed. Predicates run in a fixed order and
the first failing one names the game's rejection reason, so every game is counted exactly once.
Reasons that need the moves (illegal moves, too few plies) are decided in ``decode``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

ELO_RULES = ("both", "mean", "mover")

# Lichess's speed classes by estimated duration, base + 40 x increment seconds (lila Speed.scala).
TIME_CONTROL_CLASSES = (
    "unknown",
    "ultrabullet",
    "bullet",
    "blitz",
    "rapid",
    "classical",
    "correspondence",
)
_SPEED_LIMITS = ((29, "ultrabullet"), (179, "bullet"), (479, "blitz"), (1499, "rapid"))
_CLASSICAL_MAX = 21599

# Every reason a game can be rejected for, with the sentence the manifest prints for it.
REASONS: dict[str, str] = {
    "truncated": "the source ended inside this game (a cut-off download or archive)",
    "no_headers": "bytes with no PGN tag pairs (garbage, or movetext without headers)",
    "between_games": "text after a game's termination marker, before the next tags (not a game)",
    "oversized": "game larger than the size limit; cut off",
    "variant": "a Variant tag other than Standard (Chess960, Three-check, ...)",
    "setup_fen": "starts from a set-up position (SetUp/FEN tags)",
    "unrated": "casual (unrated) game",
    "bot": "a BOT account played",
    "termination": "termination in the rejected set (Abandoned, Rules infraction by default)",
    "time_control": "time-control class not in the configured set",
    "date": "date outside the configured range, or missing when a range is set",
    "no_result": "result missing or * (unfinished): no outcome to learn from",
    "elo_missing": "WhiteElo or BlackElo missing, empty or '?'",
    "elo_not_numeric": "WhiteElo or BlackElo not an integer",
    "elo_above_cap": "ratings above the Elo cap under the configured rule",
    "bad_movetext": "movetext that is not PGN (unbalanced braces or variations, stray tokens)",
    "no_termination": "movetext without 1-0, 0-1, 1/2-1/2 or * at its end: cut off or not PGN",
    "result_mismatch": "the Result tag and the movetext's termination marker disagree",
    "illegal_move": "a move that is illegal in its position",
    "ambiguous_move": "a SAN move that fits more than one legal move",
    "no_moves": "no moves at all",
    "too_few_plies": "fewer plies than the configured minimum",
    "not_sampled": "left out by the build's sample (a hash of the game above sample_fraction)",
}
DEFAULT_TERMINATIONS = frozenset({"Abandoned", "Rules infraction"})
_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FilterConfig:
    """Which games (and, for the ``mover`` rule, which positions) are kept."""

    cap: int | None = None  # Elo cap; None keeps every rating (and requires none)
    elo_rule: str = "both"  # both: both <= cap; mean: average <= cap; mover: mover <= cap
    only_elo: bool = False  # switch off every filter but the Elo rule
    standard_only: bool = True  # reject Variant != Standard and SetUp/FEN games
    rated_only: bool = True  # reject games whose Event says casual/unrated
    time_controls: frozenset[str] | None = None  # allowed classes; None allows all
    reject_terminations: frozenset[str] = DEFAULT_TERMINATIONS
    exclude_bots: bool = True  # reject games with a BOT title on either side
    min_plies: int = 1  # fewer plies than this: rejected (checked after decoding)
    date_from: str | None = None  # inclusive, YYYY.MM.DD (UTCDate, else Date)
    date_to: str | None = None  # inclusive, YYYY.MM.DD
    require_result: bool = True  # reject Result '*' or missing (training needs the outcome)

    def __post_init__(self) -> None:
        if self.elo_rule not in ELO_RULES:
            raise ValueError(f"elo_rule must be one of {ELO_RULES}, got {self.elo_rule!r}")
        if self.cap is not None and not 0 < self.cap < 10_000:
            raise ValueError(f"cap must be a rating between 1 and 9999, got {self.cap}")
        if self.time_controls is not None:
            unknown = set(self.time_controls) - set(TIME_CONTROL_CLASSES)
            if unknown:
                raise ValueError(
                    f"unknown time-control classes {sorted(unknown)}; "
                    f"choose from {TIME_CONTROL_CLASSES}"
                )
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and not _DATE.match(value):
                raise ValueError(f"{name} must be YYYY.MM.DD, got {value!r}")
        if self.min_plies < 0:
            raise ValueError(f"min_plies must be >= 0, got {self.min_plies}")


Headers = Mapping[str, str]
Predicate = Callable[[Headers, FilterConfig], "str | None"]


def parse_elo(value: str | None) -> int | str | None:
    """An Elo tag as an int; None when missing or '?'; the string 'nan' when not numeric."""
    if value is None:
        return None
    value = value.strip()
    if value in ("", "?", "-"):
        return None
    try:
        return int(value)
    except ValueError:
        return "nan"


def elo_pair(headers: Headers) -> tuple[int | None, int | None]:
    """(white, black) ratings as ints, None where missing or not numeric."""
    w, b = parse_elo(headers.get("WhiteElo")), parse_elo(headers.get("BlackElo"))
    return (w if isinstance(w, int) else None, b if isinstance(b, int) else None)


def time_control_class(value: str | None) -> str:
    """Lichess's speed class of a TimeControl tag ('300+3', '-', '1/259200', ...)."""
    if value is None or not value.strip() or value.strip() == "?":
        return "unknown"
    value = value.strip()
    if value == "-" or value.startswith("1/"):
        return "correspondence"
    base, _, inc = value.partition("+")
    try:
        estimate = int(base) + 40 * int(inc or 0)
    except ValueError:
        return "unknown"
    for limit, name in _SPEED_LIMITS:
        if estimate <= limit:
            return name
    return "classical" if estimate <= _CLASSICAL_MAX else "correspondence"


def check_variant(h: Headers, cfg: FilterConfig) -> str | None:
    variant = h.get("Variant", "Standard").strip().lower()
    if variant in ("standard", "chess", ""):
        return None
    return "setup_fen" if variant == "from position" else "variant"


def check_setup(h: Headers, cfg: FilterConfig) -> str | None:
    return "setup_fen" if h.get("SetUp", "0").strip() == "1" or "FEN" in h else None


def check_rated(h: Headers, cfg: FilterConfig) -> str | None:
    event = h.get("Event", "").lower()
    return "unrated" if "casual" in event or "unrated" in event else None


def check_bot(h: Headers, cfg: FilterConfig) -> str | None:
    titles = (h.get("WhiteTitle", ""), h.get("BlackTitle", ""))
    return "bot" if "BOT" in titles else None


def check_termination(h: Headers, cfg: FilterConfig) -> str | None:
    return "termination" if h.get("Termination") in cfg.reject_terminations else None


def check_time_control(h: Headers, cfg: FilterConfig) -> str | None:
    allowed = cfg.time_controls
    if allowed is None or time_control_class(h.get("TimeControl")) in allowed:
        return None
    return "time_control"


def check_date(h: Headers, cfg: FilterConfig) -> str | None:
    date = h.get("UTCDate") or h.get("Date") or ""
    if not _DATE.match(date):
        return "date"
    if cfg.date_from is not None and date < cfg.date_from:
        return "date"
    if cfg.date_to is not None and date > cfg.date_to:
        return "date"
    return None


def check_result(h: Headers, cfg: FilterConfig) -> str | None:
    return None if h.get("Result", "").strip() in ("1-0", "0-1", "1/2-1/2") else "no_result"


def check_elo(h: Headers, cfg: FilterConfig) -> str | None:
    """The Elo rule. Under ``mover``, a game passes if either side qualifies."""
    if cfg.cap is None:
        return None
    w, b = parse_elo(h.get("WhiteElo")), parse_elo(h.get("BlackElo"))
    if cfg.elo_rule == "mover":
        ok = [r for r in (w, b) if isinstance(r, int)]
        if any(r <= cfg.cap for r in ok):
            return None
        if ok:
            return "elo_above_cap"
        return "elo_not_numeric" if "nan" in (w, b) else "elo_missing"
    if w is None or b is None:
        return "elo_missing"
    if not isinstance(w, int) or not isinstance(b, int):
        return "elo_not_numeric"
    if cfg.elo_rule == "both":
        return None if w <= cfg.cap and b <= cfg.cap else "elo_above_cap"
    return None if (w + b) / 2 <= cfg.cap else "elo_above_cap"


def header_predicates(cfg: FilterConfig) -> tuple[Predicate, ...]:
    """The enabled header predicates of a config, in the order that names a game's reason."""
    if cfg.only_elo:
        return (check_elo,)
    chain: list[Predicate] = []
    if cfg.standard_only:
        chain += [check_variant, check_setup]
    if cfg.rated_only:
        chain.append(check_rated)
    if cfg.exclude_bots:
        chain.append(check_bot)
    if cfg.reject_terminations:
        chain.append(check_termination)
    if cfg.time_controls is not None:
        chain.append(check_time_control)
    if cfg.date_from is not None or cfg.date_to is not None:
        chain.append(check_date)
    if cfg.require_result:
        chain.append(check_result)
    chain.append(check_elo)
    return tuple(chain)


def prefilter(headers: Headers, predicates: tuple[Predicate, ...], cfg: FilterConfig) -> str | None:
    """The first rejection reason of a game's headers, or None if it passes them all."""
    if not headers:
        return "no_headers"
    for predicate in predicates:
        reason = predicate(headers, cfg)
        if reason is not None:
            return reason
    return None


def mover_allowed(rating: int | None, cfg: FilterConfig) -> bool:
    """Under the ``mover`` rule, whether positions with this player to move are kept."""
    if cfg.cap is None or cfg.elo_rule != "mover":
        return True
    return rating is not None and rating <= cfg.cap
