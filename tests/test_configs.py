"""The real Hydra configs compose, instantiate and fail clearly."""
import pytest
from hydra.utils import instantiate

from conftest import compose_config

PRESETS = ["horse2zebra", "monet2photo", "cezanne2photo", "ukiyoe2photo", "vangogh2photo", "summer2winter_yosemite",
           "apple2orange", "maps", "cityscapes", "facades", "iphone2dslr_flower"]


def _crop(transform) -> int:
    """The crop size an albumentations training pipeline ends with."""
    import albumentations as A

    return next(t.height for t in transform.transforms if isinstance(t, (A.RandomCrop, A.CenterCrop)))


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_point_at_the_reference_layout(preset, tmp_path):
    datamodule = instantiate(compose_config([f"data={preset}", "paths.data_dir=/datasets"], tmp_path).data)
    assert datamodule.folders == {"a": f"/datasets/{preset}/trainA", "b": f"/datasets/{preset}/trainB",
                                  "val_a": f"/datasets/{preset}/testA", "val_b": f"/datasets/{preset}/testB"}
    assert _crop(datamodule.train_transform) == 256 and datamodule.name == preset


def test_missing_preset_says_where_to_put_the_data(tmp_path):
    cfg = compose_config(["data=horse2zebra", f"paths.data_dir={tmp_path}/data"], tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        instantiate(cfg.data).setup("fit")
    message = str(info.value)
    assert f"{tmp_path}/data/horse2zebra/trainA" in message and "download_dataset.sh horse2zebra" in message
    assert "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip" in message


def _blocks(generator) -> int:
    from cyclestyle.networks import ResnetBlock

    return sum(isinstance(m, ResnetBlock) for m in generator.modules())


def test_default_is_the_demo_with_a_small_model(tmp_path):
    cfg = compose_config([], tmp_path)
    model = instantiate(cfg.model, _convert_="all")
    assert type(instantiate(cfg.data)).__name__ == "DemoDataModule"
    assert model.family == "cyclegan" and _blocks(model.g_a) == 6 and model.g_a.model[1].out_channels == 32
    assert instantiate(cfg.trainer, logger=False, precision="32").max_steps == 500
    assert type(instantiate(cfg.callbacks.demo_psnr)).__name__ == "PairedPSNR"


def test_folders_use_the_reference_model(tmp_path):
    cfg = compose_config(["data=folders", "data.a=x", "data.b=y"], tmp_path)
    model = instantiate(cfg.model, _convert_="all")
    assert _blocks(model.g_a) == 9 and model.g_a.model[1].out_channels == 64
    optimizers, _ = model.configure_optimizers()
    assert [(o.defaults["lr"], o.defaults["betas"]) for o in optimizers] == [(2e-4, (0.5, 0.999))] * 2
    assert (model.lambda_a, model.lambda_identity, model.pools["A"].size) == (10.0, 0.5, 50)
    assert "demo_psnr" not in cfg.callbacks


@pytest.mark.parametrize("trainer,devices", [("default", 1), ("cpu", 1), ("ddp_cpu", 2)])
def test_cpu_trainer_configs_build_their_trainer(trainer, devices, tmp_path):
    built = instantiate(compose_config([f"trainer={trainer}"], tmp_path).trainer, logger=False, precision="32")
    assert type(built.accelerator).__name__ == "CPUAccelerator" and built.num_devices == devices
    assert type(built.strategy).__name__ == ("DDPStrategy" if trainer == "ddp_cpu" else "SingleDeviceStrategy")
    if trainer == "ddp_cpu":
        assert built.strategy._process_group_backend == "gloo"
        assert built.strategy._ddp_kwargs.get("find_unused_parameters") is False


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_gpu_trainer_configs_ask_for_a_gpu(trainer, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(Exception, match="gpu"):
        instantiate(compose_config([f"trainer={trainer}"], tmp_path).trainer, logger=False, precision="32")


@pytest.mark.parametrize("group,name,check", [
    ("model/generator", "unet_256", lambda m: type(m.g_a).__name__ == "UnetGenerator"),
    ("model/generator", "resnet_6blocks", lambda m: _blocks(m.g_a) == 6),
    ("model/discriminator", "pixel", lambda m: type(m.d_a).__name__ == "PixelDiscriminator"),
    ("model/discriminator", "n_layers", lambda m: type(m.d_a).__name__ == "NLayerDiscriminator"),
])
def test_network_groups_build_their_networks(group, name, check, tmp_path):
    cfg = compose_config(["data=folders", "data.a=x", "data.b=y", f"{group}={name}"], tmp_path)
    assert check(instantiate(cfg.model, _convert_="all"))


FAMILIES = ["cyclegan", "ugatit", "cut", "fastcut"]
DATA = [["data=demo"], ["data=folders", "data.a=x", "data.b=y"], ["data=stream", "data.a=x", "data.b=y"],
        ["data=horse2zebra"]]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("data", DATA, ids=lambda d: d[0])
def test_every_model_composes_with_every_data_option(family, data, tmp_path):
    cfg = compose_config([f"model={family}", *data, "model.generator.ngf=8"], tmp_path)
    model = instantiate(cfg.model, _convert_="all")
    instantiate(cfg.data)
    assert model.family == family
    demo = data == ["data=demo"]
    assert ("demo_psnr" in cfg.callbacks) == demo and cfg.trainer.max_steps == (
        (700 if family == "fastcut" else 500) if demo else -1)  # the demo recipe of this family, only there


STYLE_FAMILIES = {"fast_style": "FastStyle", "multi_style": "MultiStyle"}


@pytest.mark.parametrize("family", sorted(STYLE_FAMILIES))
@pytest.mark.parametrize("data", [*DATA, ["data=content", "data.content=x"], ["data=content_stream", "data.content=x"]],
                         ids=lambda d: d[0])
def test_style_families_compose_with_every_data_option(family, data, tmp_path):
    cfg = compose_config([f"model={family}", *data, "model.vgg.weights=null", "model.network.channels=4"], tmp_path)
    model = instantiate(cfg.model, _convert_="all")
    instantiate(cfg.data)
    assert model.family == family and type(model).__name__ == STYLE_FAMILIES[family]
    assert cfg.trainer.max_steps == ({"fast_style": 300, "multi_style": 400}[family] if data == ["data=demo"] else -1)
    assert "demo_psnr" not in cfg.callbacks  # no target renderings to compare with


def test_experiment_selects_its_data(tmp_path):
    cfg = compose_config(["experiment=monet2photo"], tmp_path)
    assert cfg.data.name == "monet2photo" and cfg.task_name == "monet2photo"


@pytest.mark.parametrize("override,setting", [
    ("model.generator.name=resnet_12blocks", "model.generator.name"),
    ("model.lambda_a=-1", "model.lambda_a"),
    ("model.gan_mode=wgan", "model.gan_mode"),
    ("model.scheduler.unit=week", "model.scheduler.unit"),
])
def test_invalid_model_values_name_the_setting(override, setting, tmp_path):
    cfg = compose_config(["data=folders", "data.a=x", "data.b=y", override], tmp_path)
    with pytest.raises(Exception, match=setting.replace(".", r"\.")):
        instantiate(cfg.model, _convert_="all")


def test_crop_larger_than_load_names_the_setting(tmp_path):
    cfg = compose_config(["data=folders", "data.a=x", "data.b=y", "data.crop_size=512"], tmp_path)
    with pytest.raises(Exception, match=r"data\.crop_size"):
        instantiate(cfg.data)
