"""GPU-fit arithmetic against known facts about Llama 2 on OCI shapes."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from domain.shapes import SHAPES
from domain.sizing import (
    KNOWN_ARCHITECTURES,
    FitReport,
    approximate_architecture,
    architecture_from_config,
    architecture_from_tag,
    architecture_tag,
    estimate_fit,
    infer_parameters_b,
    known_architecture,
    resolve_architecture,
    weights_gb,
)

LLAMA2_7B = KNOWN_ARCHITECTURES[("llama-2", 7)]
LLAMA2_13B = KNOWN_ARCHITECTURES[("llama-2", 13)]
LLAMA2_70B = KNOWN_ARCHITECTURES[("llama-2", 70)]


def _fit(model: str, shape: str, **kwargs: Any) -> FitReport:
    architecture = known_architecture(model)
    assert architecture is not None
    parameters = architecture.parameters()
    assert parameters is not None
    args: dict[str, object] = {"engine": "vllm", "max_model_len": 4096, "tensor_parallelism": 1, **kwargs}
    return estimate_fit(shape=shape, parameters_b=parameters / 1e9, architecture=architecture, **args)


class TestKnownFacts:
    def test_llama2_7b_fp16_fits_one_a10(self) -> None:
        report = _fit("meta-llama/Llama-2-7b-chat-hf", "VM.GPU.A10.1")
        assert report.fits
        assert 13.0 < report.weights_gb < 14.0
        assert report.full_length_sequences >= 1

    def test_llama2_13b_fp16_does_not_fit_one_a10(self) -> None:
        report = _fit("meta-llama/Llama-2-13b-chat-hf", "VM.GPU.A10.1")
        assert not report.fits
        assert report.full_length_sequences == 0
        assert report.summary().startswith("does not fit")

    def test_llama2_13b_fp16_fits_two_a10(self) -> None:
        report = _fit("meta-llama/Llama-2-13b-chat-hf", "VM.GPU.A10.2", tensor_parallelism=2)
        assert report.fits
        assert report.gpu_memory_gb == 48

    @pytest.mark.parametrize("quantization", ["awq", "gptq"])
    def test_llama2_13b_4bit_fits_one_a10(self, quantization: str) -> None:
        report = _fit("meta-llama/Llama-2-13b-chat-hf", "VM.GPU.A10.1", quantization=quantization)
        assert report.fits
        assert report.weights_gb < 8

    def test_llama2_70b_fp16_needs_two_80gb_gpus(self) -> None:
        one = _fit("meta-llama/Llama-2-70b-chat-hf", "BM.GPU.A100-v2.8", tensor_parallelism=1)
        two = _fit("meta-llama/Llama-2-70b-chat-hf", "BM.GPU.A100-v2.8", tensor_parallelism=2)
        two_40gb = _fit("meta-llama/Llama-2-70b-chat-hf", "BM.GPU4.8", tensor_parallelism=2)
        assert not one.fits
        assert two.fits
        assert not two_40gb.fits

    def test_every_shape_gives_the_7b_model_a_verdict(self) -> None:
        verdicts = {name: _fit("Llama-2-7b-hf", name).fits for name in SHAPES}
        assert verdicts["VM.GPU.A10.1"] is True
        assert verdicts["VM.GPU3.1"] is False  # 16 GB V100: 13.5 GB of weights leave no KV room


class TestArithmetic:
    def test_more_context_means_fewer_sequences(self) -> None:
        short = _fit("Llama-2-7b-hf", "VM.GPU.A10.1", max_model_len=2048)
        long = _fit("Llama-2-7b-hf", "VM.GPU.A10.1", max_model_len=8192)
        assert short.full_length_sequences > long.full_length_sequences
        assert long.kv_cache_per_sequence_gb == pytest.approx(4 * short.kv_cache_per_sequence_gb)

    def test_kv_cache_of_llama2_7b_is_half_a_mebibyte_per_token(self) -> None:
        # 2 (K and V) x 32 layers x 32 heads x 128 dims x 2 bytes = 524288 bytes per token
        assert LLAMA2_7B.kv_bytes_per_token() == 524288

    def test_grouped_query_attention_shrinks_the_70b_kv_cache(self) -> None:
        assert LLAMA2_70B.kv_heads == 8
        assert LLAMA2_70B.kv_bytes_per_token() == 2 * 80 * 8 * 128 * 2

    def test_parameter_counts_of_the_table_match_the_published_sizes(self) -> None:
        assert LLAMA2_7B.parameters() == pytest.approx(6.74e9, rel=0.005)
        assert LLAMA2_13B.parameters() == pytest.approx(13.02e9, rel=0.005)
        assert LLAMA2_70B.parameters() == pytest.approx(68.98e9, rel=0.005)

    def test_concurrency_beyond_what_fits_is_reported(self) -> None:
        report = _fit("Llama-2-7b-hf", "VM.GPU.A10.1", concurrency=16)
        assert report.fits
        assert not report.concurrency_met

    def test_tgi_uses_the_whole_gpu_by_default(self) -> None:
        vllm = _fit("Llama-2-7b-hf", "VM.GPU.A10.1", engine="vllm")
        tgi = _fit("Llama-2-7b-hf", "VM.GPU.A10.1", engine="tgi")
        assert vllm.usable_gpu_memory_gb == pytest.approx(21.6)
        assert tgi.usable_gpu_memory_gb == pytest.approx(24.0)

    def test_quantized_weights_keep_embeddings_at_two_bytes(self) -> None:
        flat = weights_gb(13.0, "awq")
        with_embeddings = weights_gb(13.0, "awq", LLAMA2_13B)
        assert flat == pytest.approx(6.5)
        assert with_embeddings == pytest.approx(6.5 + LLAMA2_13B.embedding_parameters * 1.5 / 1e9)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"shape": "VM.GPU.A10.3"}, "shape 'VM.GPU.A10.3' is not a known GPU shape"),
            ({"engine": "triton"}, "engine 'triton' is not one of tgi, vllm"),
            ({"quantization": "int4"}, "quantization 'int4' is not one of awq, fp8, gptq, int8, none"),
            ({"tensor_parallelism": 2}, "tensor parallelism 2 must be between 1 and the 1 GPU(s)"),
            ({"parameters_b": 0}, "parameters 0 must be a positive number"),
            ({"max_model_len": 0}, "max model length 0 must be at least 1"),
        ],
    )
    def test_impossible_input_is_named(self, kwargs: dict[str, object], message: str) -> None:
        args: dict[str, object] = {"shape": "VM.GPU.A10.1", "engine": "vllm", "parameters_b": 7.0, **kwargs}
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            estimate_fit(**args)


class TestArchitectures:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("meta-llama/Llama-2-7b-chat-hf", "Llama-2-7B"),
            ("llama-2-13b-chat-hf", "Llama-2-13B"),
            ("TheBloke/Llama-2-70B-Chat-AWQ", "Llama-2-70B"),
            ("meta-llama/Meta-Llama-3-8B-Instruct", "Llama-3-8B"),
            ("meta-llama/Llama-3.1-70B-Instruct", "Llama-3-70B"),
            ("mistralai/Mistral-7B-Instruct-v0.2", "Mistral-7B"),
        ],
    )
    def test_known_models_by_name(self, name: str, expected: str) -> None:
        found = known_architecture(name)
        assert found is not None
        assert found.name == expected

    @pytest.mark.parametrize("name", ["meta-llama/Llama-2-34b-hf", "tiiuae/falcon-7b", "gpt2"])
    def test_unknown_models_are_not_guessed(self, name: str) -> None:
        assert known_architecture(name) is None

    def test_approximation_is_close_to_llama2_and_never_smaller(self) -> None:
        for known, size in ((LLAMA2_7B, 6.74), (LLAMA2_13B, 13.02)):
            approx = approximate_architecture(size)
            assert approx.kv_bytes_per_token() >= known.kv_bytes_per_token()
            assert approx.kv_bytes_per_token() == pytest.approx(known.kv_bytes_per_token(), rel=0.1)

    def test_resolution_prefers_config_then_table_then_approximation(self, tmp_path: Path) -> None:
        folder = tmp_path / "llama-2-7b-chat-hf"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(_config(layers=2, hidden=64, heads=4, kv=2)))
        from_config, source = resolve_architecture(local_path=folder)
        assert (from_config, source) == (architecture_from_config(_config(2, 64, 4, 2)), "config.json")

        from_table, source = resolve_architecture(model_id="meta-llama/Llama-2-13b-hf", parameters_b=13)
        assert from_table == LLAMA2_13B
        assert source == "known architecture Llama-2-13B"

        approx, source = resolve_architecture(model_id="acme/bespoke-20b", parameters_b=20)
        assert approx is not None
        assert source == "approximation from the parameter count"
        assert resolve_architecture(model_id="acme/bespoke") == (None, "unknown")


def _config(layers: int, hidden: int, heads: int, kv: int, **extra: object) -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": hidden * 3,
        "vocab_size": 1000,
        "torch_dtype": "float16",
        **extra,
    }


def _write_safetensors(path: Path, tensors: dict[str, list[int]]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors.items():
        size = 2
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


class TestParameterInference:
    def test_safetensors_headers_count_exactly(self, tmp_path: Path) -> None:
        _write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": [1000, 500], "b": [500]})
        _write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"c": [250, 2]})
        (tmp_path / "config.json").write_text(json.dumps(_config(2, 64, 4, 2)))
        assert infer_parameters_b(local_path=tmp_path) == pytest.approx(501_000 / 1e9)

    def test_quantized_checkpoint_is_counted_from_its_architecture(self, tmp_path: Path) -> None:
        _write_safetensors(tmp_path / "model.safetensors", {"qweight": [10, 10]})
        config = _config(2, 64, 4, 2, quantization_config={"quant_method": "awq", "bits": 4})
        (tmp_path / "config.json").write_text(json.dumps(config))
        expected = architecture_from_config(config)
        assert expected is not None and expected.parameters() is not None
        assert infer_parameters_b(local_path=tmp_path) == pytest.approx(expected.parameters() / 1e9)

    def test_index_total_size_when_shards_are_not_readable(self, tmp_path: Path) -> None:
        (tmp_path / "model-00001-of-00001.safetensors").write_text(
            "version https://git-lfs.github.com/spec/v1"
        )
        (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
        index = {"metadata": {"total_size": 13_476_839_424}, "weight_map": {}}
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
        assert infer_parameters_b(local_path=tmp_path) == pytest.approx(6.738, rel=1e-3)

    def test_folder_name_then_model_id(self, tmp_path: Path) -> None:
        folder = tmp_path / "acme-3b-instruct"
        folder.mkdir()
        (folder / "config.json").write_text("{not json")
        assert infer_parameters_b(local_path=folder) == 3.0
        assert infer_parameters_b(local_path=tmp_path / "weights", model_id="acme/tiny-350m") == 0.35
        assert infer_parameters_b(model_id="acme/unsized") is None

    def test_names_give_the_size_they_state_and_the_fit_uses_the_exact_count(self) -> None:
        stated = infer_parameters_b(model_id="meta-llama/Llama-2-70b-chat-hf")
        assert stated == 70.0
        report = estimate_fit(
            shape="BM.GPU.A100-v2.8",
            engine="vllm",
            parameters_b=stated,
            tensor_parallelism=2,
            architecture=LLAMA2_70B,
        )
        assert report.weights_gb == pytest.approx(2 * 68.98, rel=1e-3)
        assert report.fits


class TestArchitectureTag:
    def test_known_architectures_travel_by_name(self) -> None:
        for architecture in KNOWN_ARCHITECTURES.values():
            assert architecture_tag(architecture) == architecture.name
            assert architecture_from_tag(architecture.name) == architecture

    def test_others_travel_as_kv_layout_keeping_the_kv_cache_size(self) -> None:
        custom = architecture_from_config(_config(layers=28, hidden=3584, heads=28, kv=4))
        assert custom is not None
        assert architecture_tag(custom) == "28x4x128"
        back = architecture_from_tag("28x4x128")
        assert back is not None and back.kv_bytes_per_token() == custom.kv_bytes_per_token()

    @pytest.mark.parametrize("text", ["", "32x32", "0x8x128", "32x8x128x1", "Llama-2-34B"])
    def test_anything_else_is_none(self, text: str) -> None:
        assert architecture_from_tag(text) is None


# -- fine-tuning: one training process on one GPU ----------------------------------------------------------


def test_lora_adapters_on_every_linear_layer_match_peft_for_llama_2_7b() -> None:
    """PEFT reports 39,976,960 trainable parameters for Llama-2-7B at r=16 on all linear layers."""
    from domain.sizing import lora_parameters

    llama = known_architecture("meta-llama/Llama-2-7b-hf")
    assert llama is not None
    assert lora_parameters(llama, 16) == 39_976_960
    assert lora_parameters(llama, 64) == 4 * 39_976_960


def test_training_memory_follows_the_method() -> None:
    from domain.sizing import TrainingFitReport, estimate_training_fit

    llama = known_architecture("meta-llama/Llama-2-7b-hf")

    def fit(method: str, checkpointing: bool = True) -> TrainingFitReport:
        return estimate_training_fit(
            shape="VM.GPU.A10.1",
            method=method,
            parameters_b=7.0,
            architecture=llama,
            batch_size=2,
            gradient_checkpointing=checkpointing,
        )

    lora, qlora, full = fit("lora"), fit("qlora"), fit("full")
    assert (round(lora.weights_gb, 1), round(lora.trainable_state_gb, 2)) == (13.5, 0.64)
    assert round(qlora.weights_gb, 1) == 3.8  # 4-bit, with embeddings and head at 2 bytes
    assert (full.weights_gb, round(full.trainable_state_gb, 1)) == (0.0, 107.8)  # 16 bytes a parameter
    assert (lora.fits, qlora.fits, full.fits) == (True, True, False)
    # Without gradient checkpointing every layer's activations stay: about 7 times the checkpointed figure.
    without = fit("lora", checkpointing=False)
    assert round(without.activations_gb / lora.activations_gb) == 7 and not without.fits


def test_training_fit_is_per_gpu_whatever_the_shape_has() -> None:
    from domain.sizing import estimate_training_fit

    one = estimate_training_fit(
        shape="VM.GPU.A10.1", method="lora", parameters_b=13.0, gradient_checkpointing=True
    )
    four = estimate_training_fit(
        shape="BM.GPU.A10.4", method="lora", parameters_b=13.0, gradient_checkpointing=True
    )
    assert one.required_gpu_memory_gb == four.required_gpu_memory_gb and four.gpus == 4
    assert (one.usable_gpu_memory_gb, four.usable_gpu_memory_gb) == (21.6, 21.6)
    with pytest.raises(ValueError, match="method 'dpo' is not one of lora, qlora, full"):
        estimate_training_fit(shape="VM.GPU.A10.1", method="dpo", parameters_b=7.0)


def test_a_training_job_gets_disk_for_the_base_the_model_and_its_zip() -> None:
    from domain.sizing import training_disk_gb

    assert training_disk_gb(0.1) == 50  # OCI's minimum
    assert training_disk_gb(6.74) == 80  # 3 x 13.5 GB + 30 GB, rounded up to 10
    assert training_disk_gb(70) == 450


def test_sharded_training_counts_every_gpu_of_every_node() -> None:
    """Full fine-tuning of 7B fits 2 x BM.GPU.A10.4 only sharded; LoRA of 70B fits 2 x BM.GPU.A100-v2.8."""
    from domain.sizing import estimate_training_fit, known_architecture

    llama7 = known_architecture("Llama-2-7b-hf")
    common = {"parameters_b": 7.0, "architecture": llama7, "batch_size": 2, "gradient_checkpointing": True}
    alone = estimate_training_fit(shape="BM.GPU.A10.4", method="full", nodes=2, **common)
    sharded = estimate_training_fit(shape="BM.GPU.A10.4", method="full", nodes=2, sharding="fsdp", **common)
    assert not alone.fits and sharded.fits and sharded.processes == 8 and sharded.shards == 8
    assert round(sharded.required_gpu_memory_gb, 1) == 18.8
    assert "split over 2 x 4 GPUs" in sharded.breakdown()
    assert not estimate_training_fit(shape="BM.GPU.A10.4", method="full", sharding="fsdp", **common).fits

    llama70 = known_architecture("Llama-2-70b-hf")
    big = {"parameters_b": 70.0, "architecture": llama70, "gradient_checkpointing": True}
    assert not estimate_training_fit(shape="BM.GPU.A100-v2.8", method="lora", nodes=2, **big).fits
    lora = estimate_training_fit(shape="BM.GPU.A100-v2.8", method="lora", nodes=2, sharding="fsdp", **big)
    assert lora.fits and lora.required_gpu_memory_gb < 0.5 * lora.usable_gpu_memory_gb


def test_lora_slots_are_counted_in_the_serving_fit() -> None:
    """vLLM reserves max LoRAs x max rank buffers on every linear layer: Llama 3 8B, 4 x 16, bf16 = 0.34 GB."""
    from domain.sizing import KNOWN_ARCHITECTURES, estimate_fit, lora_serving_gb

    llama3 = KNOWN_ARCHITECTURES[("llama-3", 8)]
    assert round(lora_serving_gb(llama3, 4, 16), 2) == 0.34
    assert (
        round(lora_serving_gb(llama3, 4, 32), 2) == 0.67 and round(lora_serving_gb(llama3, 8, 64), 2) == 2.68
    )
    plain = estimate_fit(shape="VM.GPU.A10.1", engine="vllm", parameters_b=8.0, architecture=llama3)
    served = estimate_fit(
        shape="VM.GPU.A10.1",
        engine="vllm",
        parameters_b=8.0,
        architecture=llama3,
        max_loras=4,
        max_lora_rank=16,
    )
    assert round(served.required_gpu_memory_gb - plain.required_gpu_memory_gb, 2) == 0.34
    assert served.full_length_sequences <= plain.full_length_sequences
    assert "LoRA slots 0.34" in served.summary()
