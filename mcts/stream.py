"""Continuous self-play: every game slot starts a new game the ply its game ends.

``mcts.selfplay.play_games`` plays a batch of games in lockstep until the longest ends, so the
slots of finished games keep searching (measured 1.8-2.7 searches per stored position with the
512-ply cap, BENCHMARKS.md 13b). Here each of ``batch_size`` slots plays games back to back, as
the actors of AlphaZero and lczero do: ``play_plies`` runs a fixed number of plies on the device
(one compiled program; the slots' games, and where each stands, are carried from call to call)
and returns every row it searched; ``GameAssembler`` keeps each slot's rows on the host until
its game ends and hands finished games over as a ``Trajectory`` (the replay buffer's and the
metrics' input, with the same fields and meaning as a ``play_games`` batch). Every search then
belongs to a game that is stored: one search per stored position, less the rows of the games
still in play when a run stops.

Game ends are ``play_games``'s: the rules, resignation by the root value (a slot draws whether
its next game may resign when the game starts), the length cap (``max_plies`` positions
searched; truncated, or adjudicated by material when set). The stochastic plies (the first
``temperature_plies`` of each game) count per slot.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from data_pipeline.encoding import NUM_ACTIONS, OBS_LEN
from mcts.env import MAX_MOVES, REASONS, ChessState, initial_state, material, observe, step
from mcts.search import search
from mcts.selfplay import SelfPlayConfig, Trajectory, resign_threshold
from scaling.model import PolicyValueNet

__all__ = ["GameAssembler", "Plies", "Slots", "Stream", "new_slots", "play_plies"]

RESIGNED, TRUNCATED, ADJUDICATED = (
    REASONS.index("resigned"),
    REASONS.index("truncated"),
    REASONS.index("adjudicated"),
)


@struct.dataclass
class Slots:
    """The games in play, one per slot ([B] each): carried from one ``play_plies`` to the next."""

    state: ChessState  # [B] the position to search next
    ply: jax.Array  # int32[B] positions already searched in the slot's game
    below: jax.Array  # int8[B] colour first searched below resign_value in this game; -1 none
    resign_allowed: jax.Array  # bool[B] whether this game may resign


@struct.dataclass
class Plies:
    """The rows of ``S`` plies of ``B`` slots ([S, B, ...]): every row is a searched position of
    the slot's game, the ``ply``-th of that game; ``ended`` marks a game's last row (its move ended
    the game, or the side to move resigned there), where ``result`` (white's view), ``reason``
    and ``would_resign`` describe the game."""

    obs: jax.Array  # uint8[S, B, OBS_LEN] (mover's frame)
    moves: jax.Array  # int16[S, B, MAX_MOVES]
    policy: jax.Array  # f32[S, B, MAX_MOVES] the search policy target
    action: jax.Array  # int32[S, B] the move played (NUM_ACTIONS: resigned)
    value: jax.Array  # f32[S, B] root search value, mover's view
    ply: jax.Array  # int32[S, B] the row's index in its game (0: the first position)
    ended: jax.Array  # bool[S, B]
    result: jax.Array  # int8[S, B] where ended: 1, 0, -1 from white's view
    reason: jax.Array  # int8[S, B] where ended: an index into REASONS
    resign_allowed: jax.Array  # bool[S, B] the row's game's
    would_resign: jax.Array  # int8[S, B] where ended: the colour first below resign_value; -1


def _fresh(key: jax.Array, cfg: SelfPlayConfig) -> tuple[ChessState, jax.Array]:
    """[B] standard starting positions and whether each new game may resign."""
    b = cfg.batch_size
    state = jax.tree.map(lambda x: jnp.broadcast_to(x, (b, *x.shape)), initial_state())
    if cfg.resign_value is None:
        return state, jnp.zeros((b,), jnp.bool_)
    return state, jax.random.uniform(key, (b,)) >= cfg.no_resign_fraction


def new_slots(key: jax.Array, cfg: SelfPlayConfig) -> Slots:
    """``cfg.batch_size`` games at the starting position (jit-able)."""
    state, allowed = _fresh(key, cfg)
    b = cfg.batch_size
    return Slots(
        state=state,
        ply=jnp.zeros((b,), jnp.int32),
        below=jnp.full((b,), -1, jnp.int8),
        resign_allowed=allowed,
    )


def _white_material(state: ChessState) -> jax.Array:  # [B] -> int32[B]
    return jax.vmap(material)(state) * jnp.where(state.color == 0, 1, -1)


def play_plies(
    net: PolicyValueNet,
    params: Any,
    key: jax.Array,
    cfg: SelfPlayConfig,
    slots: Slots,
    plies: int,
    resign_value: jax.Array | float | None = None,  # overrides cfg.resign_value (if that is set)
) -> tuple[Slots, Plies]:
    """``plies`` searched plies of every slot (jit-able; ``net``, ``cfg`` and ``plies`` static):
    the slots afterwards and the rows searched."""
    b = cfg.batch_size
    resign_below = resign_threshold(cfg, resign_value)
    temp_on = jnp.float32(cfg.search.temperature)

    def body(c: Slots, key: jax.Array) -> tuple[Slots, dict[str, jax.Array]]:
        search_key, fresh_key = jax.random.split(key)
        temperature = jnp.where(c.ply < cfg.temperature_plies, temp_on, 0.0)  # f32[B]
        out = search(
            net, params, c.state, search_key, cfg.search, elo=cfg.elo, temperature=temperature
        )
        mover = c.state.color  # int8[B]
        low = out.value < resign_below  # bool[B] this side would resign here
        resign = low & c.resign_allowed
        moved, _ = jax.vmap(step)(c.state, out.action)
        ply = c.ply + 1
        below = jnp.where(low & (c.below < 0), mover.astype(jnp.int8), c.below)
        mate_or_rule = moved.terminated & ~resign
        at_cap = ~resign & ~moved.terminated & (ply >= cfg.max_plies)
        sign = jnp.where(mover == 0, 1, -1)  # the mover's view -> white's
        if cfg.adjudicate_margin is None:
            cap_result = jnp.zeros((b,), jnp.int32)
        else:  # the margin must hold before and after the last move (not mid-exchange)
            before, after = _white_material(c.state), _white_material(moved)
            m = cfg.adjudicate_margin
            settled = (jnp.abs(after) >= m) & (jnp.abs(before) >= m)
            same = jnp.sign(after) == jnp.sign(before)
            cap_result = jnp.where(settled & same, jnp.sign(after), 0)
        # moved.result is the new mover's (the opponent's) view
        result = jnp.where(
            resign, -sign, jnp.where(mate_or_rule, -sign * moved.result, cap_result)
        ).astype(jnp.int8)
        reason = jnp.where(
            resign,
            RESIGNED,
            jnp.where(
                mate_or_rule, moved.reason, jnp.where(cap_result != 0, ADJUDICATED, TRUNCATED)
            ),
        ).astype(jnp.int8)
        ended = resign | mate_or_rule | at_cap
        row = {
            "obs": jax.vmap(observe)(c.state),
            "moves": c.state.moves,
            "policy": out.policy,
            "action": jnp.where(resign, NUM_ACTIONS, out.action),
            "value": out.value,
            "ply": c.ply,
            "ended": ended,
            "result": jnp.where(ended, result, 0).astype(jnp.int8),
            "reason": jnp.where(ended, reason, 0).astype(jnp.int8),
            "resign_allowed": c.resign_allowed,
            "would_resign": jnp.where(ended, below, -1).astype(jnp.int8),
        }
        fresh, allowed = _fresh(fresh_key, cfg)

        def pick(new: jax.Array, old: jax.Array) -> jax.Array:
            return jnp.where(ended.reshape(-1, *[1] * (new.ndim - 1)), new, old)

        nxt = Slots(
            state=jax.tree.map(pick, fresh, moved),
            ply=jnp.where(ended, 0, ply),
            below=jnp.where(ended, -1, below).astype(jnp.int8),
            resign_allowed=jnp.where(ended, allowed, c.resign_allowed),
        )
        return nxt, row

    slots, rows = jax.lax.scan(body, slots, jax.random.split(key, plies))
    return slots, Plies(**rows)


class GameAssembler:
    """Each slot's rows of its game in play, on the host, until the game ends; then the finished
    games as a ``Trajectory``. Its arrays are checkpointed with the run (``arrays``/``load``),
    so a resumed run continues the games in play."""

    FIELDS = ("obs", "moves", "policy", "action", "value")

    def __init__(self, cfg: SelfPlayConfig) -> None:
        b, t = cfg.batch_size, cfg.max_plies
        self.cfg = cfg
        self.rows: dict[str, np.ndarray] = {
            "obs": np.zeros((b, t, OBS_LEN), np.uint8),
            "moves": np.full((b, t, MAX_MOVES), NUM_ACTIONS, np.int16),
            "policy": np.zeros((b, t, MAX_MOVES), np.float32),
            "action": np.full((b, t), NUM_ACTIONS, np.int32),
            "value": np.zeros((b, t), np.float32),
        }
        self.length = np.zeros((b,), np.int32)  # rows held per slot

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.rows, "length": self.length}

    def load(self, arrays: dict[str, Any]) -> None:
        for name in self.FIELDS:
            self.rows[name] = np.array(arrays[name])  # a copy: rows are written in place
        self.length = np.array(arrays["length"], np.int32)

    def add(self, plies: Plies) -> Trajectory:
        """Takes the rows of ``play_plies`` (device or host arrays); returns the games that ended
        in them (possibly none; ``T`` = the longest one's rows)."""
        p = jax.device_get(plies)
        ply, ended = np.asarray(p.ply), np.asarray(p.ended)
        s, b = ended.shape
        slot = np.arange(b)
        done: list[tuple[int, dict[str, np.ndarray], int, int, int, bool, int]] = []
        for t in range(s):
            if not (ply[t] == self.length).all():
                bad = int(np.flatnonzero(ply[t] != self.length)[0])
                raise ValueError(
                    f"self-play slot {bad}: row of ply {int(ply[t, bad])} after "
                    f"{int(self.length[bad])} held rows (rows fed out of order)"
                )
            for name in self.FIELDS:
                self.rows[name][slot, self.length] = np.asarray(getattr(p, name))[t]
            self.length += 1
            for k in np.flatnonzero(ended[t]):
                n = int(self.length[k])
                game = {name: self.rows[name][k, :n].copy() for name in self.FIELDS}
                done.append(
                    (
                        n,
                        game,
                        int(p.result[t, k]),
                        int(p.reason[t, k]),
                        int(p.would_resign[t, k]),
                        bool(p.resign_allowed[t, k]),
                        int(k),
                    )
                )
                self.length[k] = 0
        return self._trajectory(done, searched=s * b)

    def _trajectory(self, done: list[Any], searched: int) -> Trajectory:
        t, g = max([n for n, *_ in done], default=1), len(done)
        obs = np.zeros((t, g, OBS_LEN), np.uint8)
        moves = np.full((t, g, MAX_MOVES), NUM_ACTIONS, np.int16)
        policy = np.zeros((t, g, MAX_MOVES), np.float32)
        action = np.full((t, g), NUM_ACTIONS, np.int32)
        value = np.zeros((t, g), np.float32)
        valid = np.zeros((t, g), np.bool_)
        outcome = np.zeros((t, g), np.float32)
        length = np.zeros((g,), np.int32)
        result = np.zeros((g,), np.int8)
        reason = np.zeros((g,), np.int8)
        would = np.full((g,), -1, np.int8)
        allowed = np.zeros((g,), np.bool_)
        white = np.where(np.arange(t) % 2 == 0, 1.0, -1.0)  # games start with white to move
        for j, (n, game, res, why, below, ok, _) in enumerate(done):
            obs[:n, j], moves[:n, j], policy[:n, j] = game["obs"], game["moves"], game["policy"]
            action[:n, j], value[:n, j] = game["action"], game["value"]
            valid[:n, j] = True
            outcome[:n, j] = white[:n] * res
            length[j], result[j], reason[j], would[j], allowed[j] = n, res, why, below, ok
        fields: dict[str, Any] = {  # host arrays where the device's would be
            "obs": obs,
            "moves": moves,
            "policy": policy,
            "action": action,
            "value": value,
            "valid": valid,
            "outcome": outcome,
            "length": length,
            "result": result,
            "reason": reason,
            "resign_allowed": allowed,
            "would_resign": would,
            "plies_run": np.int32(searched // max(1, self.cfg.batch_size)),
        }
        return Trajectory(**fields)


def cfg_resign(cfg: SelfPlayConfig, value: float | None) -> jax.Array:
    """The threshold as the traced argument of a compiled game loop (one program for all)."""
    fallback = 0.0 if cfg.resign_value is None else cfg.resign_value
    return jnp.float32(fallback if value is None else value)


class Stream:
    """Continuous self-play for one process or actor: the slots on the device, the games in
    play on the host. ``play`` runs ``plies`` plies with the given parameters and returns the
    games finished in them and the network evaluations spent (every slot searched every ply)."""

    def __init__(self, net: PolicyValueNet, cfg: SelfPlayConfig, plies: int, key: jax.Array):
        if plies < 1:
            raise ValueError(f"selfplay iteration_plies must be >= 1, got {plies}")
        self.cfg, self.plies = cfg, plies
        self.slots = jax.jit(new_slots, static_argnames="cfg")(key, cfg)
        self.assembler = GameAssembler(cfg)
        self._play = jax.jit(
            lambda params, key, slots, resign: play_plies(
                net, params, key, cfg, slots, plies, resign
            )
        )

    def play(
        self, params: Any, key: jax.Array, resign_value: float | None = None
    ) -> tuple[Trajectory, int]:
        """``resign_value``: the threshold in force (None: the config's)."""
        resign = cfg_resign(self.cfg, resign_value)
        self.slots, rows = self._play(params, key, self.slots, resign)
        traj = self.assembler.add(rows)
        return traj, self.plies * self.cfg.batch_size * (self.cfg.search.num_simulations + 1)

    def tree(self) -> dict[str, Any]:
        """The state a resume checkpoint keeps (the slots' games and their rows so far)."""
        return {"slots": self.slots, "rows": self.assembler.arrays()}

    def load(self, tree: dict[str, Any]) -> None:
        self.slots = jax.tree.map(jnp.asarray, tree["slots"])
        self.assembler.load(tree["rows"])
