"""elocap data stage: PGN sources -> Elo-capped, encoded training shards.

The public surface; the JAX side of the encoding is ``data_pipeline.encoding_jax`` (it imports
jax, which the data stage itself does not need).
"""

from data_pipeline.budget import DataBudget, estimate_positions, positions_consumed, sampled_config
from data_pipeline.build import BuildConfig, BuildError, SplitConfig, build
from data_pipeline.decode import EXAMPLE_DTYPE, MovetextError, decode_game, to_examples
from data_pipeline.encoding import (
    NUM_ACTIONS,
    OBS_LEN,
    action_to_move,
    encode_board,
    encode_boards,
    legal_action_mask,
    move_to_action,
)
from data_pipeline.extract import FilterReport, filter_games
from data_pipeline.filters import REASONS, FilterConfig, time_control_class
from data_pipeline.loader import (
    LoaderConfig,
    dataset,
    iterator_state,
    read_examples,
    restore_iterator,
)
from data_pipeline.pgn import RawGame, iter_raw_games
from data_pipeline.shards import Select
from data_pipeline.sources import Source, SourceError, open_source, resolve_sources
from data_pipeline.views import build_caps

__all__ = [
    "EXAMPLE_DTYPE",
    "NUM_ACTIONS",
    "OBS_LEN",
    "REASONS",
    "BuildConfig",
    "BuildError",
    "DataBudget",
    "FilterConfig",
    "FilterReport",
    "LoaderConfig",
    "MovetextError",
    "RawGame",
    "Select",
    "Source",
    "SourceError",
    "SplitConfig",
    "action_to_move",
    "build",
    "build_caps",
    "dataset",
    "decode_game",
    "encode_board",
    "encode_boards",
    "estimate_positions",
    "filter_games",
    "iter_raw_games",
    "iterator_state",
    "legal_action_mask",
    "move_to_action",
    "open_source",
    "positions_consumed",
    "read_examples",
    "resolve_sources",
    "restore_iterator",
    "sampled_config",
    "time_control_class",
    "to_examples",
]
