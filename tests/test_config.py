"""Configuration: defaults, then a file, then HEPCAT_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.config import declared, load_config
from catalog.errors import ConfigError, UnknownSetting
from hepcat.cli import main, settings_reference

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_embedded_default_is_sqlite_in_the_data_directory(tmp_path):
    config = load_config(env={}, data_dir=str(tmp_path))

    assert config.catalog_url == f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    assert config.ddm_destination == "/topic/rucio.events"
    assert config.prodsys_url is None
    assert config.storage_path == tmp_path


def test_a_file_overrides_defaults_and_the_environment_overrides_the_file(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('[hepcat]\nport = 8080\nddm_destination = "/topic/a"\n')

    config = load_config(path, env={"HEPCAT_DDM_DESTINATION": "/topic/b"})

    assert config.port == 8080
    assert config.ddm_destination == "/topic/b"
    assert config.sources["port"] == str(path)
    assert config.sources["ddm_destination"].startswith("environment")


def test_hepcat_toml_in_the_data_directory_is_read(tmp_path):
    (tmp_path / "hepcat.toml").write_text("anonymous_read = false\n")

    config = load_config(env={"HEPCAT_DATA_DIR": str(tmp_path)})

    assert config.anonymous_read is False


def test_a_misspelt_variable_is_an_error_that_suggests_the_setting():
    with pytest.raises(UnknownSetting, match="did you mean 'database_url'"):
        load_config(env={"HEPCAT_DATABSE_URL": "sqlite://"})


def test_a_value_of_the_wrong_type_names_the_setting():
    with pytest.raises(ConfigError, match="setting port = 'eighty'"):
        load_config(env={"HEPCAT_PORT": "eighty"})


def test_a_file_that_is_not_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("port = = 1\n")

    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})


def test_the_test_suite_variables_are_not_settings():
    config = load_config(env={"HEPCAT_TEST_REQUIRE_SERVICES": "1"})

    assert "test_require_services" not in config.values


def test_every_setting_is_documented():
    text = DOCS.read_text()

    assert text == settings_reference(), (
        "run: hepcat config docs > docs/configuration.md"
    )
    for setting in declared():
        assert f"`{setting.env}`" in text


def test_config_show_says_where_each_value_came_from(tmp_path):
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "config", "show"],
        env={"HEPCAT_PORT": "5999"},
    )

    assert result.exit_code == 0
    assert "HEPCAT_PORT" in result.output
    assert "5999    [environment (HEPCAT_*)]" in result.output
    # Unset, these two are derived from the data directory: shown as such.
    catalog = f"sqlite:///{tmp_path.resolve() / 'catalog.sqlite'}"
    assert f" (none: {catalog})    [default]" in result.output
    assert f" (none: {tmp_path.resolve()})    [default]" in result.output
    assert f" (none: {tmp_path.resolve() / 'skims'})    [default]" in result.output
    assert " (none: http://127.0.0.1:5999/AMI/FrontEnd)    [default]" in result.output


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("notaurl", "not a SQLAlchemy URL"),
        ("foo://bar/x", "no database dialect or driver 'foo'"),
    ],
)
def test_a_url_that_cannot_be_used_names_the_setting_and_its_variable(url, reason):
    with pytest.raises(ConfigError, match=reason) as raised:
        load_config(env={"HEPCAT_PRODSYS_URL": url})

    assert "setting prodsys_url" in str(raised.value)
    assert "set in the environment as HEPCAT_PRODSYS_URL" in str(raised.value)


def test_a_bad_value_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('database_url = "notaurl"\n')

    with pytest.raises(ConfigError, match=f"set in {path}"):
        load_config(path, env={})


def test_the_log_level_is_one_of_the_five_in_any_case():
    with pytest.raises(ConfigError, match="expected one of DEBUG, INFO"):
        load_config(env={"HEPCAT_LOG_LEVEL": "LOUD"})

    assert load_config(env={"HEPCAT_LOG_LEVEL": "warning"}).log_level == "WARNING"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HEPCAT_PORT", "-5"),
        ("HEPCAT_PORT", "0"),
        ("HEPCAT_PORT", "99999"),
        ("HEPCAT_PRODSYS_SAFETY_LAG", "-100"),
        ("HEPCAT_TASKSERVER_WORKERS", "0"),
        ("HEPCAT_TASKSERVER_LEASE_SECONDS", "0"),
        ("HEPCAT_TASKSERVER_LEASE_SECONDS", "0.001"),
        ("HEPCAT_SESSION_HOURS", "-1"),
    ],
)
def test_a_number_out_of_its_range_is_refused(variable, value):
    with pytest.raises(ConfigError, match=f"set in the environment as {variable}"):
        load_config(env={variable: value})


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HEPCAT_DDM_BROKER", "http://127.0.0.1:61613", "expected stomp://host:port"),
        ("HEPCAT_DDM_BROKER", "stomp+ssl://mq:61614", "expected stomp://host:port"),
        ("HEPCAT_DDM_BROKER", "stomp://mq:notaport", "expected stomp://host:port"),
        ("HEPCAT_DDM_BROKER", "stomp://mq:99999", "expected stomp://host:port"),
        ("HEPCAT_DDM_BROKER", "stomp:///topic/x", "expected stomp://host:port"),
        ("HEPCAT_DDM_BROKER", "stomp://mq:61613/topic/x", "expected stomp://host:port"),
        ("HEPCAT_DASK_SCHEDULER", "tcp://scheduler", "expected tcp://host:port"),
        ("HEPCAT_DASK_SCHEDULER", "scheduler", "expected tcp://host:port"),
        ("HEPCAT_DASK_SCHEDULER", "inproc://x", "expected tcp://host:port"),
        ("HEPCAT_DASK_SCHEDULER", "tcp://scheduler:0", "expected tcp://host:port"),
    ],
)
def test_a_server_address_is_checked_when_the_configuration_loads(
    variable, value, expected
):
    with pytest.raises(ConfigError, match=expected) as raised:
        load_config(env={variable: value})

    message = str(raised.value)
    assert message.startswith(f"setting {variable[7:].lower()} = {value!r}")
    assert message.endswith(f"set in the environment as {variable}")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HEPCAT_DDM_BROKER", "stomp://127.0.0.1:61613"),
        ("HEPCAT_DDM_BROKER", "tcp://mq.cern.ch"),
        ("HEPCAT_DDM_BROKER", "mq.cern.ch:61613"),
        ("HEPCAT_DDM_BROKER", "stomp://atlas:s%40cret@mq.cern.ch:61613/"),
        ("HEPCAT_DASK_SCHEDULER", "tcp://127.0.0.1:8786"),
        ("HEPCAT_DASK_SCHEDULER", "scheduler.cern.ch:8786"),
        ("HEPCAT_DASK_SCHEDULER", "tls://[::1]:8786"),
    ],
)
def test_a_server_address_of_the_right_form_is_kept_unreached(variable, value):
    # Nothing listens at most of these: loading must not try to connect.
    config = load_config(env={variable: value})

    assert config.values[variable[7:].lower()] == value


def test_an_empty_server_address_is_unset():
    config = load_config(env={"HEPCAT_DDM_BROKER": "", "HEPCAT_DASK_SCHEDULER": " "})

    assert config.ddm_broker is None
    assert config.dask_scheduler is None


# -- passwords: hidden wherever a setting's value is shown ---------------------


@pytest.mark.parametrize(
    ("variable", "value", "shown", "reason"),
    [
        (
            "HEPCAT_DDM_BROKER",
            "stomp+ssl://atlas:s3cret@mq.cern.ch:61614",
            "stomp+ssl://atlas:***@mq.cern.ch:61614",
            "expected stomp://host:port",
        ),
        (
            "HEPCAT_DDM_BROKER",
            "atlas:s3cret@mq.cern.ch:notaport",
            "atlas:***@mq.cern.ch:notaport",
            "expected stomp://host:port",
        ),
        (
            "HEPCAT_DDM_BROKER",
            "stomp://atlas:s3cret@with@at@mq.cern.ch:61613/topic",
            "stomp://atlas:***@mq.cern.ch:61613/topic",
            "expected stomp://host:port",
        ),
        (
            "HEPCAT_DATABASE_URL",
            "postgresql+nosuchdriver://ami:s3cret@db.cern.ch/ami",
            "postgresql+nosuchdriver://ami:***@db.cern.ch/ami",
            "SQLAlchemy knows no database dialect or driver 'postgresql+nosuchdriver'",
        ),
        (
            "HEPCAT_PRODSYS_URL",
            "oracle+oracledb://atlas:s3cret@db.cern.ch:port/?service_name=P",
            "oracle+oracledb://atlas:***@db.cern.ch:port/?service_name=P",
            "its port is not a number",
        ),
        (
            "HEPCAT_TIER0_URL",
            "nosuchdb://t0:s3cret@db.cern.ch/t0",
            "nosuchdb://t0:***@db.cern.ch/t0",
            "SQLAlchemy knows no database dialect or driver 'nosuchdb'",
        ),
        (
            "HEPCAT_COMA_URL",
            "nosuchdb://db.cern.ch/coma?user=coma&password=s3cret",
            "nosuchdb://db.cern.ch/coma?user=coma&password=***",
            "SQLAlchemy knows no database dialect or driver 'nosuchdb'",
        ),
    ],
)
def test_a_setting_error_hides_the_password(variable, value, shown, reason):
    with pytest.raises(ConfigError) as raised:
        load_config(env={variable: value})

    assert str(raised.value) == (
        f"setting {variable[7:].lower()} = {shown!r} is not usable: {reason}; "
        f"set in the environment as {variable}"
    )
    assert "s3cret" not in str(raised.value)


def test_a_setting_error_from_a_file_hides_the_password(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('ddm_broker = "stomp://atlas:s3cret@mq.cern.ch:61613/x"\n')

    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})

    assert "'stomp://atlas:***@mq.cern.ch:61613/x'" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_config_show_hides_passwords_and_the_secret_key(tmp_path):
    env = {
        "HEPCAT_DATABASE_URL": "postgresql+psycopg://ami:s3cret@db.cern.ch/ami",
        "HEPCAT_DDM_BROKER": "stomp://atlas:s3cret@mq.cern.ch:61613",
        "HEPCAT_SECRET_KEY": "s3cret-key-of-at-least-32-characters",
    }

    result = CliRunner().invoke(
        main, ["--data-dir", str(tmp_path), "config", "show"], env=env
    )

    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert " postgresql+psycopg://ami:***@db.cern.ch/ami    [environment" in (
        result.output
    )
    assert " stomp://atlas:***@mq.cern.ch:61613    [environment" in result.output
    assert "HEPCAT_SECRET_KEY" in result.output
    assert " ***    [environment" in result.output


def test_the_configuration_keeps_the_password_it_hides():
    url = "stomp://atlas:s%40cret@mq.cern.ch:61613"

    config = load_config(env={"HEPCAT_DDM_BROKER": url})

    assert config.ddm_broker == url


# -- a file that cannot be read, or read two ways ------------------------------


def test_a_configuration_that_names_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config(env={"HEPCAT_CONFIG": str(tmp_path)})

    assert str(raised.value) == (
        f"setting config = {str(tmp_path)!r} is not usable: it is a directory; "
        "name a TOML file"
    )


def test_a_configuration_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('host = "café"\n'.encode("latin-1"))

    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})

    assert str(raised.value).startswith(f"setting config = {str(path)!r}")
    assert "not UTF-8 text (byte 11)" in str(raised.value)


def test_a_file_with_settings_beside_its_hepcat_table_is_refused(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(
        'database_url = "sqlite:///elsewhere.sqlite"\nprodsys_url = "sqlite://"\n'
        "\n[hepcat]\nport = 5001\n"
    )

    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})

    assert "outside its [hepcat] table (database_url, prodsys_url)" in str(raised.value)


@pytest.mark.parametrize(
    ("line", "shown", "expected"),
    [
        ("port = 5000.7", "5000.7", "expected an integer, not a float"),
        ("port = true", "True", "expected an integer, not a boolean"),
        ("taskserver_workers = 2.9", "2.9", "expected an integer, not a float"),
        ("secret_key = [1, 2]", "'***'", "expected a string, not an array"),
        ("anonymous_read = 1", "1", "expected a boolean, not an integer"),
        ('session_hours = "12"', "'12'", "expected a float or an integer, not a"),
    ],
)
def test_a_value_of_the_wrong_toml_type_is_refused(tmp_path, line, shown, expected):
    path = tmp_path / "site.toml"
    path.write_text(f"[hepcat]\n{line}\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})

    name = line.split(" = ")[0]
    assert str(raised.value).startswith(f"setting {name} = {shown} is not usable: ")
    assert f"{expected}" in str(raised.value)
    assert str(raised.value).endswith(f"; set in {path}")


def test_a_short_secret_key_is_refused_without_showing_it():
    with pytest.raises(ConfigError) as raised:
        load_config(env={"HEPCAT_SECRET_KEY": "x"})

    message = str(raised.value)
    assert message.startswith("setting secret_key = '***' is not usable: ")
    assert "it has 1 characters, fewer than 32" in message
    assert message.endswith("set in the environment as HEPCAT_SECRET_KEY")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HEPCAT_HOST", "", "expected a host name or IP address"),
        ("HEPCAT_HOST", "not a host!", "expected a host name or IP address"),
        ("HEPCAT_AMI_URL", "ami.cern.ch/AMI", "expected http://host:port/path"),
        ("HEPCAT_AMI_URL", "http://ami:99999/AMI", "its port is not a number"),
    ],
)
def test_the_host_and_ami_url_are_checked_when_the_configuration_loads(
    variable, value, expected
):
    with pytest.raises(ConfigError, match=expected):
        load_config(env={variable: value})
