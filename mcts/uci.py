"""A UCI engine over plain pipes, for node-limited play that is reproducible and cheap.

python-chess's ``SimpleEngine`` costs about 1 ms per move in its event loop, which is most of
a low-node Stockfish search (20 nodes take 0.1-0.3 ms); this client writes ``position`` and
``go nodes N`` and reads ``bestmove``, nothing else. With one thread and a node limit a search
is a function of the position, its move history and the engine's tables, and ``new_game``
(``ucinewgame``, then ``isready``) clears the tables, so a game played after it is a function
of its moves: two runs give the same game.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

import chess


class UciProcess:
    """One engine process answering node-limited searches."""

    def __init__(self, path: str, options: Mapping[str, object]) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._send("uci")
        self._wait("uciok")
        for name, value in options.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            self._send(f"setoption name {name} value {text}")
        self.new_game()

    def new_game(self) -> None:
        """Clears the hash table and the search histories (``ucinewgame``) and waits for it."""
        self._send("ucinewgame")
        self._send("isready")
        self._wait("readyok")

    def best_move(self, board: chess.Board, nodes: int) -> chess.Move:
        """The engine's move in ``board`` (its whole move history is sent) after ``nodes``."""
        root = board.root()
        start = "startpos" if root.fen() == chess.STARTING_FEN else f"fen {root.fen()}"
        moves = " ".join(m.uci() for m in board.move_stack)
        self._send(f"position {start}" + (f" moves {moves}" if moves else ""))
        self._send(f"go nodes {nodes}")
        reply = self._wait("bestmove").split()
        move = chess.Move.from_uci(reply[1]) if len(reply) > 1 else chess.Move.null()
        if not board.is_legal(move):
            raise RuntimeError(f"{self.path} answered {reply[1:2]} in {board.fen()}")
        return move

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("quit")
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _wait(self, token: str) -> str:
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            if line.startswith(token):
                return line
        raise RuntimeError(f"{self.path} exited (code {self.proc.poll()}) before {token!r}")
