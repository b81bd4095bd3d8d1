"""Self-play on the device: a batch of games, each move chosen by search, in one jitted loop.

``play_games`` plays ``batch_size`` games in lockstep inside a ``lax.while_loop`` over plies,
until every game has ended or ``max_plies`` plies were played, and returns a ``Trajectory`` with
fixed shapes (``T = max_plies`` rows, rows past a game's end marked invalid). Nothing leaves the
device until the loop ends.

A game ends by the rules (``mcts.env.REASONS``), by resignation (when enabled: the side to move
resigns if the root search value falls below ``resign_value``, except in the ``no_resign_fraction``
of games that play on, as AlphaZero did to check that resigning was right: ``would_resign`` says
which side would first have resigned there, so a false resignation is one whose side then did
not lose), or by the length cap (``truncated``: scored a draw; ``reason`` tells the learner which
games those are; AlphaZero's cap of 512 plies ends almost no game).

Exploration: for the first ``temperature_plies`` plies the move is stochastic (alphazero: sampled
from the root visits at ``search.temperature``; gumbel: the winner of sequential halving with
Gumbel noise at ``search.gumbel_scale``), then greedy (the most visited move; the noiseless
Gumbel winner). The policy target is always the search's own (visit counts for alphazero, the
completed-Q improved policy for gumbel), whichever move is played. With
``adjudicate_margin`` set, a game stopped at the cap with one side ahead by at least that many
pawns of material, both before and after the last move (so not in the middle of an exchange),
is scored a win for that side (``adjudicated``), as tournaments adjudicate games that are decided
but unfinished: short games from a random start then still carry a value signal, which a draw at
the cap does not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from data_pipeline.encoding import NUM_ACTIONS, OBS_LEN
from mcts.env import MAX_MOVES, REASONS, ChessState, initial_state, material, observe, step
from mcts.search import SearchConfig, search
from scaling.model import PolicyValueNet

__all__ = [
    "GameEnds",
    "SelfPlayConfig",
    "Trajectory",
    "game_ends",
    "network_evaluations",
    "play_games",
    "resign_threshold",
]

RESIGNED, TRUNCATED, ADJUDICATED = (
    REASONS.index("resigned"),
    REASONS.index("truncated"),
    REASONS.index("adjudicated"),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelfPlayConfig:
    """One batch of self-play games."""

    batch_size: int = 64  # games played at once
    max_plies: int = 512  # game-length cap; also the trajectory's T
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    temperature_plies: int = 512  # plies played stochastically (see the module doc), then greedy
    resign_value: float | None = None  # resign below this root value (e.g. -0.9); None: never
    no_resign_fraction: float = 0.1  # games in which nobody resigns (when resigning is on)
    elo: int | None = None  # the rating an Elo-conditioned network is given (None: unknown)
    adjudicate_margin: int | None = None  # at the cap: a win for the side this many pawns up

    def __post_init__(self) -> None:
        if self.adjudicate_margin is not None and self.adjudicate_margin < 1:
            raise ValueError(
                f"selfplay.adjudicate_margin must be >= 1 pawn, got {self.adjudicate_margin}"
            )
        if self.batch_size < 1:
            raise ValueError(f"selfplay.batch_size must be >= 1, got {self.batch_size}")
        if self.max_plies < 1:
            raise ValueError(f"selfplay.max_plies must be >= 1, got {self.max_plies}")
        if self.temperature_plies < 0:
            raise ValueError("selfplay.temperature_plies must be >= 0")
        if self.resign_value is not None and not -1.0 <= self.resign_value <= 1.0:
            raise ValueError(f"selfplay.resign_value must be in [-1, 1], got {self.resign_value}")
        if not 0.0 <= self.no_resign_fraction <= 1.0:
            raise ValueError("selfplay.no_resign_fraction must be in [0, 1]")


@struct.dataclass
class Trajectory:
    """A batch of finished games. T = cfg.max_plies, B = cfg.batch_size; row t of game b is the
    position before its (t+1)-th searched move, valid iff t < length[b]."""

    obs: jax.Array  # uint8[T, B, OBS_LEN] the encoded position (mover's frame)
    moves: jax.Array  # int16[T, B, MAX_MOVES] its legal actions, padded with NUM_ACTIONS
    policy: jax.Array  # f32[T, B, MAX_MOVES] search policy target over moves (sums to 1)
    action: jax.Array  # int32[T, B] the move played (NUM_ACTIONS: none, e.g. resigned)
    value: jax.Array  # f32[T, B] root search value, mover's view
    valid: jax.Array  # bool[T, B] t < length[b]
    outcome: jax.Array  # f32[T, B] the game's result from the mover's view (0 if invalid)
    length: jax.Array  # int32[B] positions searched (moves played, +1 if the game was resigned)
    result: jax.Array  # int8[B] from white's view: 1, 0, -1 (truncated 0; adjudicated: the leader)
    reason: jax.Array  # int8[B] why it ended: an index into mcts.env.REASONS
    resign_allowed: jax.Array  # bool[B] whether this game could resign
    would_resign: jax.Array  # int8[B] colour (0 white, 1 black) first below resign_value; -1 none
    plies_run: jax.Array  # int32[] loop iterations: the batch searched this many times


@struct.dataclass
class _Carry:
    t: jax.Array  # int32[]
    key: jax.Array
    state: ChessState  # [B]
    done: jax.Array  # bool[B]
    resigned: jax.Array  # bool[B]
    before: jax.Array  # int32[B] white's material balance before the last move played
    below: jax.Array  # int8[B] the colour first searched below resign_value (-1: none yet)
    rows: dict[str, jax.Array]  # the [T, B, ...] buffers


def _buffers(t: int, b: int) -> dict[str, jax.Array]:
    return {
        "obs": jnp.zeros((t, b, OBS_LEN), jnp.uint8),
        "moves": jnp.full((t, b, MAX_MOVES), NUM_ACTIONS, jnp.int16),
        "policy": jnp.zeros((t, b, MAX_MOVES), jnp.float32),
        "action": jnp.full((t, b), NUM_ACTIONS, jnp.int32),
        "value": jnp.zeros((t, b), jnp.float32),
        "valid": jnp.zeros((t, b), jnp.bool_),
    }


def play_games(
    net: PolicyValueNet,
    params: Any,
    key: jax.Array,
    cfg: SelfPlayConfig,
    start: ChessState | None = None,  # [batch_size]; default: the standard position
    resign_value: jax.Array | float | None = None,  # overrides cfg.resign_value (if that is set)
) -> Trajectory:
    """Plays ``cfg.batch_size`` games to the end (jit-able; ``net`` and ``cfg`` static). A
    traced ``resign_value`` is the threshold in force (the run's calibrated one, ``mcts.resign``);
    resignation stays off when ``cfg.resign_value`` is None."""
    b, t_max = cfg.batch_size, cfg.max_plies
    if start is None:
        start = jax.tree.map(lambda x: jnp.broadcast_to(x, (b, *x.shape)), initial_state())
    if start.color.shape != (b,):
        raise ValueError(f"start must hold batch_size={b} games, got shape {start.color.shape}")
    key, resign_key = jax.random.split(key)
    if cfg.resign_value is None:
        resign_allowed = jnp.zeros((b,), jnp.bool_)
    else:
        resign_allowed = jax.random.uniform(resign_key, (b,)) >= cfg.no_resign_fraction
    first_color = start.color  # int8[B]
    resign_below = resign_threshold(cfg, resign_value)

    def cond(c: _Carry) -> jax.Array:
        return (c.t < t_max) & ~c.done.all()

    def body(c: _Carry) -> _Carry:
        key, search_key = jax.random.split(c.key)
        temperature = jnp.where(c.t < cfg.temperature_plies, cfg.search.temperature, 0.0)
        out = search(
            net,
            params,
            c.state,
            search_key,
            cfg.search,
            elo=cfg.elo,
            temperature=temperature,
        )
        running = ~c.done  # bool[B]
        low = running & (out.value < resign_below)  # bool[B] this side would resign here
        resign = low & resign_allowed
        play = running & ~resign
        row = {
            "obs": jax.vmap(observe)(c.state),
            "moves": c.state.moves,
            "policy": out.policy,
            "action": jnp.where(play, out.action, NUM_ACTIONS),
            "value": out.value,
            "valid": running,
        }
        rows = {k: v.at[c.t].set(row[k]) for k, v in c.rows.items()}
        moved, _ = jax.vmap(step)(c.state, out.action)
        state = jax.tree.map(
            lambda new, old: jnp.where(play.reshape(-1, *[1] * (new.ndim - 1)), new, old),
            moved,
            c.state,
        )
        return _Carry(
            t=c.t + 1,
            key=key,
            state=state,
            done=c.done | resign | state.terminated,
            resigned=c.resigned | resign,
            before=jnp.where(play, _white_material(c.state), c.before),
            below=jnp.where(low & (c.below < 0), c.state.color.astype(jnp.int8), c.below),
            rows=rows,
        )

    init = _Carry(
        t=jnp.int32(0),
        key=key,
        state=start,
        done=start.terminated,
        resigned=jnp.zeros((b,), jnp.bool_),
        before=_white_material(start),
        below=jnp.full((b,), -1, jnp.int8),
        rows=_buffers(t_max, b),
    )
    c = jax.lax.while_loop(cond, body, init)

    final = c.state
    sign = jnp.where(final.color == 0, 1, -1).astype(jnp.int8)  # mover's view -> white's view
    if cfg.adjudicate_margin is None:
        at_cap = jnp.zeros((b,), jnp.int32)  # int32[B] white's result at the cap
    else:  # the margin must hold before and after the last move (not mid-exchange)
        after, m = _white_material(final), cfg.adjudicate_margin
        settled = (jnp.abs(after) >= m) & (jnp.abs(c.before) >= m)
        at_cap = jnp.where(settled & (jnp.sign(after) == jnp.sign(c.before)), jnp.sign(after), 0)
    result = jnp.where(
        c.resigned, -sign, jnp.where(final.terminated, final.result * sign, at_cap)
    ).astype(jnp.int8)  # int8[B], white's view
    reason = jnp.where(
        c.resigned,
        RESIGNED,
        jnp.where(final.terminated, final.reason, jnp.where(at_cap != 0, ADJUDICATED, TRUNCATED)),
    ).astype(jnp.int8)
    valid = c.rows["valid"]
    plies = jnp.arange(t_max, dtype=jnp.int32)[:, None]  # [T, 1]
    mover_white = (first_color[None, :].astype(jnp.int32) + plies) % 2 == 0  # bool[T, B]
    outcome = jnp.where(mover_white, 1.0, -1.0) * result[None, :].astype(jnp.float32)
    return Trajectory(
        obs=c.rows["obs"],
        moves=c.rows["moves"],
        policy=c.rows["policy"],
        action=c.rows["action"],
        value=c.rows["value"],
        valid=valid,
        outcome=jnp.where(valid, outcome, 0.0),
        length=valid.sum(axis=0).astype(jnp.int32),
        result=result,
        reason=reason,
        resign_allowed=resign_allowed,
        would_resign=c.below,
        plies_run=c.t,
    )


def resign_threshold(cfg: SelfPlayConfig, value: jax.Array | float | None) -> jax.Array | float:
    """The root value below which the side to move resigns (-inf: resignation off)."""
    if cfg.resign_value is None:
        return -jnp.inf
    return cfg.resign_value if value is None else jnp.asarray(value, jnp.float32)


def _white_material(state: ChessState) -> jax.Array:  # [B] -> int32[B]
    """White's material minus black's, in pawns."""
    return jax.vmap(material)(state) * jnp.where(state.color == 0, 1, -1)


def network_evaluations(traj: Trajectory, cfg: SelfPlayConfig) -> int:
    """Network evaluations the batch cost (finished games keep searching until the last ends):
    one root and ``num_simulations`` leaves per game per loop iteration."""
    return int(traj.plies_run) * cfg.batch_size * (cfg.search.num_simulations + 1)


@dataclasses.dataclass(frozen=True)
class GameEnds:
    """How a batch of games ended (counts of games), for the run's metrics."""

    games: int
    checkmates: int
    stalemates: int
    repetitions: int  # threefold repetition
    fifty_moves: int
    insufficient_material: int
    resignations: int
    at_cap: int  # still going at the length cap (truncated, adjudicated, or pgx's 512 plies)
    adjudicated: int  # of those, scored for the side ahead in material
    no_resign: int  # games played on without resigning (resigning enabled)
    would_resign: int  # of those, games where a side fell below resign_value
    false_resignations: int  # of those, games the side that would have resigned did not lose

    @property
    def rule_draws(self) -> int:
        return self.stalemates + self.repetitions + self.fifty_moves + self.insufficient_material

    @property
    def false_resignation_rate(self) -> float | None:
        """False resignations per would-be resignation (None: no game would have resigned)."""
        return self.false_resignations / self.would_resign if self.would_resign else None


def game_ends(traj: Trajectory, resigning: bool) -> GameEnds:
    """Counts a (host or device) trajectory's game ends; ``resigning``: resignation was on."""
    reason = np.asarray(traj.reason)
    result = np.asarray(traj.result).astype(np.int32)  # white's view
    below = np.asarray(traj.would_resign).astype(np.int32)
    no_resign = ~np.asarray(traj.resign_allowed) if resigning else np.zeros(len(reason), bool)
    would = no_resign & (below >= 0)
    own = np.where(below == 0, result, -result)  # the result for the side that fell below
    count = {name: int((reason == REASONS.index(name)).sum()) for name in REASONS}
    return GameEnds(
        games=len(reason),
        checkmates=count["checkmate"],
        stalemates=count["stalemate"],
        repetitions=count["threefold_repetition"],
        fifty_moves=count["fifty_moves"],
        insufficient_material=count["insufficient_material"],
        resignations=count["resigned"],
        at_cap=count["truncated"] + count["adjudicated"] + count["ply_limit"],
        adjudicated=count["adjudicated"],
        no_resign=int(no_resign.sum()),
        would_resign=int(would.sum()),
        false_resignations=int((would & (own >= 0)).sum()),
    )
