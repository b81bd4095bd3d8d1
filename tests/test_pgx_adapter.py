"""``data_pipeline.pgx_rules``, the one door to pgx: no other package module imports pgx (nor any
module but ``mcts.search`` mctx), the pins in pyproject.toml are the tested ranges, an untested
version fails at import in one line, and the adapter's rules are pgx's own (checked against
pgx's public environment, which tests may import directly)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import chess
import jax
import jax.numpy as jnp
import numpy as np
import pgx
import pgx.experimental.chess as pgx_chess
import pytest

from data_pipeline import pgx_rules
from data_pipeline.encoding import NUM_ACTIONS, encode_board, legal_action_mask, move_to_action
from data_pipeline.encoding_jax import encode_position

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("elocap", "data_pipeline", "scaling", "mcts", "analysis", "jobs")
ADAPTER = Path("data_pipeline/pgx_rules.py")


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of the modules a source file imports (statements, ``__import__`` and
    ``importlib.import_module`` with a literal name)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def _importers(module: str) -> set[Path]:
    return {
        path.relative_to(ROOT)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if module in _imported_modules(path)
    }


def test_only_the_adapter_imports_pgx() -> None:
    assert (ROOT / ADAPTER).exists()
    assert _importers("pgx") == {ADAPTER}, "pgx is used through data_pipeline.pgx_rules only"


def test_only_search_imports_mctx() -> None:
    assert _importers("mctx") == {Path("mcts/search.py")}


def test_import_scan_sees_every_form(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import pgx.chess\nfrom pgx._src.games import chess\nfrom . import pgx_rules\n"
        "importlib.import_module('mctx')\n__import__('flax')\n"
    )
    assert _imported_modules(source) == {"pgx", "mctx", "flax"}


def test_pyproject_pins_the_tested_ranges() -> None:
    from mcts.search import TESTED_MCTX

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert pgx_rules.requirement("pgx", pgx_rules.TESTED_PGX) == "pgx>=2.6,<2.7"
    assert pgx_rules.requirement("pgx", pgx_rules.TESTED_PGX) in deps
    assert pgx_rules.requirement("mctx", TESTED_MCTX) in deps


def test_check_tested_version() -> None:
    check = pgx_rules.check_tested_version
    for ok in ("2.6.0", "2.6.3", "2.6.1rc1", "2.6"):
        check("pgx", ok, (2, 6), "here.py")
    for bad in ("2.7.0", "2.5.9", "3.6.0", "2", "unknown"):
        with pytest.raises(ImportError) as info:
            check("pgx", bad, (2, 6), "here.py")
        message = str(info.value)
        assert "\n" not in message
        assert f"pgx {bad} is installed" in message and "pgx>=2.6,<2.7" in message
    check("mctx", "0.0.71", (0, 0, 71), "s.py")
    with pytest.raises(ImportError, match=r"mctx>=0\.0\.71,<0\.0\.72"):
        check("mctx", "0.0.72", (0, 0, 71), "s.py")


def test_untested_pgx_fails_at_import_in_one_line() -> None:
    code = "import pgx; pgx.__version__ = '2.7.0'; import data_pipeline.pgx_rules"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: elocap is tested with pgx>=2.6,<2.7, but pgx 2.7.0")


FENS = [
    chess.STARTING_FEN,
    "r3k2r/pppq1ppp/2n2n2/3pp3/1b1PP1b1/2N2N2/PPPQ1PPP/R3K2R w KQkq - 4 8",  # both may castle
    "rnbqkbnr/ppp1p1pp/8/3pPp2/8/8/PPPP1PPP/RNBQKBNR w KQkq f6 0 3",  # en passant
    "8/1P4k1/8/8/8/8/6p1/K7 b - - 0 60",  # promotions, black to move
    "7k/5Q2/6K1/8/8/8/8/8 b - - 0 1",  # stalemate
    "k7/8/8/8/8/8/8/K6B w - - 0 1",  # insufficient material
]


@pytest.mark.slow
@pytest.mark.parametrize("fen", FENS)
def test_adapter_rules_are_pgx_rules(fen: str) -> None:
    """On pgx's own reading of a FEN: the adapter's mask, hash and encoding are pgx's and
    python-chess's, and playing every legal move gives the position pgx's step gives."""
    board = chess.Board(fen)
    state = pgx_chess.from_fen(fen)
    p = pgx_rules.position(state)
    mask = np.asarray(jax.jit(pgx_rules.legal_mask)(p))
    np.testing.assert_array_equal(mask, np.asarray(pgx_rules.rules_legal_mask(state)))
    np.testing.assert_array_equal(mask, legal_action_mask(board))
    np.testing.assert_array_equal(
        np.asarray(jax.jit(pgx_rules.zobrist_hash)(p)), np.asarray(pgx_rules.hash_history(state)[0])
    )
    np.testing.assert_array_equal(
        np.asarray(jax.jit(encode_position)(p, jnp.asarray(mask))), encode_board(board)
    )
    assert bool(jax.jit(pgx_rules.in_check)(p)) == board.is_check()
    assert bool(jax.jit(pgx_rules.insufficient_material)(p)) == board.is_insufficient_material()
    assert bool(pgx_rules.terminated(state)) == board.is_game_over()
    if board.is_game_over():
        return
    # every legal move, padded to one width so that the two functions compile once
    moves = [move_to_action(m, board.turn) for m in board.legal_moves]
    actions = jnp.asarray(moves + moves[:1] * (MOVES - len(moves)))
    ours, theirs = _play_both(state, actions)
    for name, a, b in zip(pgx_rules.Position._fields, ours, theirs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


MOVES = 64  # more than any FENS position has


@jax.jit
def _play_both(state: pgx_rules.State, actions: jax.Array) -> tuple[pgx_rules.Position, ...]:
    """The positions after each action, by the adapter's ``play`` and by pgx's ``step``."""
    p = pgx_rules.position(state)
    ours = jax.vmap(pgx_rules.play, in_axes=(None, 0))(p, actions)
    theirs = jax.vmap(lambda a: pgx_rules.position(pgx_rules.step(state, a)))(actions)
    return ours, theirs


@pytest.mark.slow
def test_game_over_through_the_environment() -> None:
    """Stalemate by Qf7 through pgx's step: the game is over, the rules' mask is empty and pgx's
    public mask is all True; one ply was played."""
    board = chess.Board("7k/8/5QK1/8/8/8/8/8 w - - 0 1")
    action = move_to_action(chess.Move.from_uci("f6f7"), board.turn)
    state = jax.jit(pgx_rules.step)(pgx_chess.from_fen(board.fen()), jnp.int32(action))
    assert bool(pgx_rules.terminated(state))
    assert not np.asarray(pgx_rules.rules_legal_mask(state)).any()
    assert np.asarray(pgx_rules.env_legal_mask(state)).all()
    assert int(pgx_rules.plies(state)) == 1


def test_init_and_constants() -> None:
    state = jax.jit(pgx_rules.init)(jax.random.key(0))
    start = pgx_rules.initial_position()
    for name, a, b in zip(
        pgx_rules.Position._fields, pgx_rules.position(state), start, strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    assert pgx_rules.MAX_PLIES == 512
    seed = np.asarray(pgx_rules.SEED_HASH)
    np.testing.assert_array_equal(np.asarray(pgx_rules.hash_history(state)[0]), seed)
    assert not (seed == np.asarray(jax.jit(pgx_rules.zobrist_hash)(start))).all()
    assert jax.eval_shape(pgx_rules.legal_mask, start).shape == (NUM_ACTIONS,)
    assert pgx.__version__.startswith("2.6.")
