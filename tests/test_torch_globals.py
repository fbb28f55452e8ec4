"""conftest's `torch_globals_restored` (autouse around every test): whatever a test changes in torch's
process-wide settings is put back, so no test depends on which tests ran before it."""
import os

import torch
import torch._dynamo.config as dynamo_config
import torch._functorch.config as functorch_config
import torch._inductor.config as inductor_config

from conftest import torch_globals_restored


def state() -> tuple:
    return (inductor_config.freezing, inductor_config.fx_graph_cache, dynamo_config.verbose,
            functorch_config.enable_autograd_cache, os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
            torch.get_num_threads(), torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(),
            torch.is_grad_enabled(), torch.get_float32_matmul_precision())


def test_what_code_under_test_changes_is_put_back(tmp_path):
    before = state()
    with torch_globals_restored():
        inductor_config.freezing = not before[0]  # what translate --compile and --precision int8 do
        inductor_config.fx_graph_cache = not before[1]
        dynamo_config.verbose = not before[2]
        functorch_config.enable_autograd_cache = not before[3]
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path)  # what keep_compile_caches() does
        torch.set_num_threads(max(1, before[5] - 1) if before[5] > 1 else 2)
        torch.set_default_dtype(torch.float64)
        torch.use_deterministic_algorithms(True)
        torch.set_grad_enabled(False)
        torch.set_float32_matmul_precision("medium")
        assert all(a != b for a, b in zip(state(), before))
    assert state() == before


def test_a_deleted_config_key_is_visible_again():
    """`del config.key` (how unittest.mock.patch undoes a patch) hides the key until it is set again."""
    before = inductor_config.fx_graph_cache
    with torch_globals_restored():
        del inductor_config.fx_graph_cache
        assert not hasattr(inductor_config, "fx_graph_cache")
    assert inductor_config.fx_graph_cache == before
