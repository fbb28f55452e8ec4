"""The real Hydra configs compose, instantiate and fail clearly."""
import pytest
from hydra.utils import instantiate

from conftest import compose_config

PRESETS = ["horse2zebra", "monet2photo", "cezanne2photo", "ukiyoe2photo", "vangogh2photo", "summer2winter_yosemite",
           "apple2orange", "maps", "cityscapes", "facades", "iphone2dslr_flower"]


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_point_at_the_reference_layout(preset, tmp_path):
    cfg = compose_config([f"data={preset}", "paths.data_dir=/datasets"], tmp_path)
    assert cfg.data.a == f"/datasets/{preset}/trainA" and cfg.data.val_b == f"/datasets/{preset}/testB"
    assert (cfg.data.load_size, cfg.data.crop_size) == (286, 256)


def test_missing_preset_says_where_to_put_the_data(tmp_path):
    cfg = compose_config(["data=horse2zebra", f"paths.data_dir={tmp_path}/data"], tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        instantiate(cfg.data).setup("fit")
    message = str(info.value)
    assert f"{tmp_path}/data/horse2zebra/trainA" in message and "download_dataset.sh horse2zebra" in message
    assert "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip" in message


def test_default_is_the_demo_with_a_small_model(tmp_path):
    cfg = compose_config([], tmp_path)
    assert cfg.data._target_.endswith("DemoDataModule")
    assert cfg.model.generator.ngf == 32 and cfg.trainer.max_steps == 500
    assert "demo_psnr" in cfg.callbacks


def test_folders_use_the_reference_model(tmp_path):
    cfg = compose_config(["data=folders", "data.a=x", "data.b=y"], tmp_path)
    assert cfg.model.generator.name == "resnet_9blocks" and cfg.model.generator.ngf == 64
    assert cfg.model.optimizer.lr == 0.0002 and list(cfg.model.optimizer.betas) == [0.5, 0.999]
    assert (cfg.model.lambda_a, cfg.model.lambda_identity, cfg.model.pool_size) == (10.0, 0.5, 50)
    assert "demo_psnr" not in cfg.callbacks


@pytest.mark.parametrize("trainer,expected", [
    ("default", {"accelerator": "auto", "devices": 1}),
    ("cpu", {"accelerator": "cpu"}),
    ("gpu", {"accelerator": "gpu"}),
    ("ddp", {"accelerator": "gpu", "devices": "auto"}),
    ("ddp_cpu", {"accelerator": "cpu", "devices": 2}),
])
def test_trainer_configs(trainer, expected, tmp_path):
    cfg = compose_config([f"trainer={trainer}"], tmp_path)
    for key, value in expected.items():
        assert cfg.trainer[key] == value
    assert cfg.trainer.use_distributed_sampler is False
    if trainer.startswith("ddp"):
        assert cfg.trainer.strategy.find_unused_parameters is False


def test_ddp_cpu_instantiates_gloo(tmp_path):
    cfg = compose_config(["trainer=ddp_cpu"], tmp_path)
    strategy = instantiate(cfg.trainer.strategy)
    assert strategy._process_group_backend == "gloo"


@pytest.mark.parametrize("group,name", [("model/generator", "unet_256"), ("model/generator", "resnet_6blocks"),
                                        ("model/discriminator", "pixel"), ("model/discriminator", "n_layers")])
def test_network_groups(group, name, tmp_path):
    cfg = compose_config(["data=folders", "data.a=x", "data.b=y", f"{group}={name}"], tmp_path)
    assert cfg.model[group.split("/")[1]].name == name


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
