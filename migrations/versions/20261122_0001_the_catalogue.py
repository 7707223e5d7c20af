"""the catalogue

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import catalog.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ami_tag",
        sa.Column("tag", sa.String(length=16), nullable=False),
        sa.Column("tag_type", sa.String(length=8), nullable=False),
        sa.Column("tag_number", sa.Integer(), nullable=False),
        sa.Column("transformation", sa.String(length=64), nullable=True),
        sa.Column("release", sa.String(length=64), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_ami_tag")),
    )
    with op.batch_alter_table("ami_tag", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ami_tag_tag_type_tag_number"),
            ["tag_type", "tag_number"],
            unique=False,
        )

    op.create_table(
        "app_user",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("dn", sa.String(length=512), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("dn", name=op.f("uq_app_user_dn")),
        sa.UniqueConstraint("login", name=op.f("uq_app_user_login")),
    )
    op.create_table(
        "container",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("erased", catalog.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_container")),
        sa.UniqueConstraint("name", name=op.f("uq_container_name")),
    )
    op.create_table(
        "data_type",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("read_status", sa.String(length=16), nullable=False),
        sa.Column("write_status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_type")),
    )
    op.create_table(
        "ddm_message",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("child_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("received", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("ignored", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ddm_message")),
        sa.UniqueConstraint("message_id", name=op.f("uq_ddm_message_message_id")),
    )
    with op.batch_alter_table("ddm_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ddm_message_child_name"), ["child_name"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ddm_message_event_type"), ["event_type"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ddm_message_name"), ["name"], unique=False)

    op.create_table(
        "nomenclature",
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("template", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("read_status", sa.String(length=16), nullable=False),
        sa.Column("write_status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("tag", "template", name=op.f("pk_nomenclature")),
    )
    op.create_table(
        "period",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_period")),
        sa.UniqueConstraint("project", "name", name=op.f("uq_period_project_name")),
    )
    with op.batch_alter_table("period", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_period_level"), ["level"], unique=False)

    op.create_table(
        "production_step",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("read_status", sa.String(length=16), nullable=False),
        sa.Column("write_status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("name", "tag", name=op.f("pk_production_step")),
    )
    op.create_table(
        "production_task",
        sa.Column("task_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("parent_task_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=True),
        sa.Column("step_name", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ctag", sa.String(length=16), nullable=True),
        sa.Column("input_dataset", sa.String(length=255), nullable=True),
        sa.Column("phys_group", sa.String(length=16), nullable=True),
        sa.Column("campaign", sa.String(length=32), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("total_events", sa.BigInteger(), nullable=True),
        sa.Column("submit_time", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("start_time", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("end_time", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("source_timestamp", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("modified", catalog.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_production_task")),
    )
    with op.batch_alter_table("production_task", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_production_task_input_dataset"),
            ["input_dataset"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_production_task_status"), ["status"], unique=False
        )

    op.create_table(
        "project",
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("is_base_type", sa.Boolean(), nullable=False),
        sa.Column("manager", sa.String(length=64), nullable=True),
        sa.Column("read_status", sa.String(length=16), nullable=False),
        sa.Column("write_status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_project")),
    )
    op.create_table(
        "quarantine",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantine_source_created"),
            ["source", "created"],
            unique=False,
        )

    op.create_table(
        "replica",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("dataset_name", sa.String(length=255), nullable=False),
        sa.Column("rse", sa.String(length=64), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=True),
        sa.Column("deleted_files", sa.BigInteger(), nullable=False),
        sa.Column("deleted_bytes", sa.BigInteger(), nullable=False),
        sa.Column("updated", catalog.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replica")),
        sa.UniqueConstraint(
            "dataset_name", "rse", name=op.f("uq_replica_dataset_name_rse")
        ),
    )
    op.create_table(
        "role",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_role")),
    )
    op.create_table(
        "run",
        sa.Column("run_number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("start_time", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("end_time", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("n_lumi_blocks", sa.Integer(), nullable=True),
        sa.Column("stable_beams", sa.Boolean(), nullable=True),
        sa.Column("modified", catalog.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_number", name=op.f("pk_run")),
    )
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_project"), ["project"], unique=False)

    op.create_table(
        "stop_point",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("timestamp", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("updated", catalog.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_stop_point")),
    )
    op.create_table(
        "sub_data_type",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("read_status", sa.String(length=16), nullable=False),
        sa.Column("write_status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sub_data_type")),
    )
    op.create_table(
        "sub_project",
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("is_base_type", sa.Boolean(), nullable=False),
        sa.Column("manager", sa.String(length=64), nullable=True),
        sa.Column("read_status", sa.String(length=16), nullable=False),
        sa.Column("write_status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_sub_project")),
    )
    op.create_table(
        "task_lease",
        sa.Column("task_name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("expires", catalog.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("task_name", name=op.f("pk_task_lease")),
    )
    op.create_table(
        "task_run",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("task_name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("started", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("ended", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("items", sa.BigInteger(), nullable=False),
        sa.Column("backlog", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run")),
    )
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_task_run_task_name_started"),
            ["task_name", "started"],
            unique=False,
        )

    op.create_table(
        "api_token",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "user_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("expires", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("last_used", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_api_token_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "container_member",
        sa.Column(
            "container_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("child_name", sa.String(length=255), nullable=False),
        sa.Column("child_type", sa.String(length=16), nullable=False),
        sa.Column("added", catalog.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["container.id"],
            name=op.f("fk_container_member_container_id_container"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "container_id", "child_name", name=op.f("pk_container_member")
        ),
    )
    with op.batch_alter_table("container_member", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_container_member_child_name"), ["child_name"], unique=False
        )

    op.create_table(
        "dataset",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("project_name", sa.String(length=64), nullable=False),
        sa.Column("dataset_number", sa.Integer(), nullable=True),
        sa.Column("run_number", sa.Integer(), nullable=True),
        sa.Column("physics_short", sa.String(length=200), nullable=True),
        sa.Column("stream_name", sa.String(length=64), nullable=True),
        sa.Column("production_step", sa.String(length=32), nullable=True),
        sa.Column("data_type", sa.String(length=64), nullable=True),
        sa.Column("version", sa.String(length=200), nullable=True),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("prodsys_status", sa.String(length=32), nullable=True),
        sa.Column("completion", sa.Double(), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("physicist_responsible", sa.String(length=64), nullable=True),
        sa.Column("physics_comment", sa.String(length=1000), nullable=True),
        sa.Column("ami_status", sa.String(length=16), nullable=False),
        sa.Column("trash_annotation", sa.String(length=1000), nullable=True),
        sa.Column("trash_date", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("trash_trigger", sa.String(length=64), nullable=True),
        sa.Column("n_files", sa.BigInteger(), nullable=False),
        sa.Column("total_events", sa.BigInteger(), nullable=False),
        sa.Column("total_size", sa.BigInteger(), nullable=False),
        sa.Column("cross_section", sa.Double(), nullable=True),
        sa.Column("cross_section_min", sa.Double(), nullable=True),
        sa.Column("cross_section_max", sa.Double(), nullable=True),
        sa.Column("gen_filt_eff", sa.Double(), nullable=True),
        sa.Column(
            "cross_section_source_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("ecm_energy", sa.Double(), nullable=True),
        sa.Column("beam_type", sa.String(length=32), nullable=True),
        sa.Column("generator_name", sa.String(length=200), nullable=True),
        sa.Column("generator_tune", sa.String(length=64), nullable=True),
        sa.Column("pdf", sa.String(length=64), nullable=True),
        sa.Column("atlas_release", sa.String(length=64), nullable=True),
        sa.Column("transformation_package", sa.String(length=64), nullable=True),
        sa.Column("geometry_version", sa.String(length=64), nullable=True),
        sa.Column("conditions_tag", sa.String(length=64), nullable=True),
        sa.Column("job_config", sa.String(length=255), nullable=True),
        sa.Column("trigger_config", sa.String(length=64), nullable=True),
        sa.Column("period", sa.String(length=255), nullable=True),
        sa.Column("n_lost_lumi_blocks", sa.Integer(), nullable=True),
        sa.Column("lost_lumi_blocks", sa.Text(), nullable=True),
        sa.Column("tier0_state", sa.String(length=8), nullable=True),
        sa.Column("ddm_open", sa.Boolean(), nullable=True),
        sa.Column("ddm_n_files", sa.BigInteger(), nullable=True),
        sa.Column("ddm_total_events", sa.BigInteger(), nullable=True),
        sa.Column("ddm_total_size", sa.BigInteger(), nullable=True),
        sa.Column("ddm_consistent", sa.Boolean(), nullable=True),
        sa.Column("ddm_incomplete", sa.Boolean(), nullable=False),
        sa.Column("ddm_erased", catalog.db.UTCDateTime(), nullable=True),
        sa.Column("stale", sa.Integer(), nullable=False),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("last_modified", catalog.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cross_section_source_id"],
            ["dataset.id"],
            name=op.f("fk_dataset_cross_section_source_id_dataset"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["production_task.task_id"],
            name=op.f("fk_dataset_task_id_production_task"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
        sa.UniqueConstraint("name", name=op.f("uq_dataset_name")),
    )
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_ami_status"), ["ami_status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dataset_data_type"), ["data_type"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dataset_dataset_number"), ["dataset_number"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dataset_last_modified"), ["last_modified"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_dataset_period"), ["period"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_dataset_prodsys_status"), ["prodsys_status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dataset_project_name_data_type"),
            ["project_name", "data_type"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dataset_run_number"), ["run_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_dataset_stale"), ["stale"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_dataset_task_id"), ["task_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dataset_total_events"), ["total_events"], unique=False
        )

    op.create_table(
        "period_run",
        sa.Column(
            "period_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("run_number", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["period.id"],
            name=op.f("fk_period_run_period_id_period"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("period_id", "run_number", name=op.f("pk_period_run")),
    )
    with op.batch_alter_table("period_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_period_run_run_number"), ["run_number"], unique=False
        )

    op.create_table(
        "user_role",
        sa.Column(
            "user_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("role_name", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_name"],
            ["role.name"],
            name=op.f("fk_user_role_role_name_role"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_user_role_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "role_name", name=op.f("pk_user_role")),
    )
    op.create_table(
        "dataset_keyword",
        sa.Column(
            "dataset_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("keyword", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_dataset_keyword_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "dataset_id", "keyword", name=op.f("pk_dataset_keyword")
        ),
    )
    with op.batch_alter_table("dataset_keyword", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_keyword_keyword"), ["keyword"], unique=False
        )

    op.create_table(
        "file",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "dataset_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("lfn", sa.String(length=255), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(length=16), nullable=True),
        sa.Column("events", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lost", sa.Boolean(), nullable=False),
        sa.Column("lumi_blocks", sa.Text(), nullable=True),
        sa.Column("cross_section", sa.Double(), nullable=True),
        sa.Column("gen_filt_eff", sa.Double(), nullable=True),
        sa.Column("input_file", sa.String(length=255), nullable=True),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("modified", catalog.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_file_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file")),
        sa.UniqueConstraint("guid", name=op.f("uq_file_guid")),
        sa.UniqueConstraint("lfn", name=op.f("uq_file_lfn")),
    )
    with op.batch_alter_table("file", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_file_dataset_id_lfn"), ["dataset_id", "lfn"], unique=False
        )

    op.create_table(
        "hashtag",
        sa.Column(
            "dataset_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_hashtag_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "scope", "name", name=op.f("pk_hashtag")),
    )
    with op.batch_alter_table("hashtag", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hashtag_scope_name"), ["scope", "name"], unique=False
        )

    op.create_table(
        "provenance_edge",
        sa.Column(
            "parent_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "child_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["dataset.id"],
            name=op.f("fk_provenance_edge_child_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["dataset.id"],
            name=op.f("fk_provenance_edge_parent_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "parent_id", "child_id", name=op.f("pk_provenance_edge")
        ),
    )
    with op.batch_alter_table("provenance_edge", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provenance_edge_child_id"), ["child_id"], unique=False
        )

    op.create_table(
        "reconciliation",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "dataset_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("quantity", sa.String(length=32), nullable=False),
        sa.Column("catalog_value", sa.BigInteger(), nullable=True),
        sa.Column("ddm_value", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("detected", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("resolved", catalog.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_reconciliation_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation")),
    )
    with op.batch_alter_table("reconciliation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_dataset_id"), ["dataset_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_reconciliation_resolved"), ["resolved"], unique=False
        )

    op.create_table(
        "skim",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "owner_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "parent_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "output_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("selection", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("n_events_in", sa.BigInteger(), nullable=True),
        sa.Column("n_selected", sa.BigInteger(), nullable=True),
        sa.Column("collection_path", sa.String(length=1000), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("executor", sa.String(length=64), nullable=True),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("updated", catalog.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["output_id"],
            ["dataset.id"],
            name=op.f("fk_skim_output_id_dataset"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["app_user.id"],
            name=op.f("fk_skim_owner_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["dataset.id"], name=op.f("fk_skim_parent_id_dataset")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skim")),
    )
    with op.batch_alter_table("skim", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_skim_owner_id"), ["owner_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_skim_state"), ["state"], unique=False)

    op.create_table(
        "tag_database",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "dataset_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("store", sa.String(length=32), nullable=False),
        sa.Column("location", sa.String(length=1000), nullable=False),
        sa.Column("schema_json", sa.Text(), nullable=True),
        sa.Column("distributions_json", sa.Text(), nullable=True),
        sa.Column("n_events", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created", catalog.db.UTCDateTime(), nullable=False),
        sa.Column("updated", catalog.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_tag_database_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_database")),
    )
    with op.batch_alter_table("tag_database", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tag_database_dataset_id"), ["dataset_id"], unique=False
        )

    op.create_table(
        "file_lumi_range",
        sa.Column(
            "file_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("first", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["file.id"],
            name=op.f("fk_file_lumi_range_file_id_file"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "first", name=op.f("pk_file_lumi_range")),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; MariaDB refuses to drop an index
    # that a foreign key still needs, so only the tables are dropped.
    op.drop_table("file_lumi_range")
    op.drop_table("tag_database")
    op.drop_table("skim")
    op.drop_table("reconciliation")
    op.drop_table("provenance_edge")
    op.drop_table("hashtag")
    op.drop_table("file")
    op.drop_table("dataset_keyword")
    op.drop_table("user_role")
    op.drop_table("period_run")
    op.drop_table("dataset")
    op.drop_table("container_member")
    op.drop_table("api_token")
    op.drop_table("task_run")
    op.drop_table("task_lease")
    op.drop_table("sub_project")
    op.drop_table("sub_data_type")
    op.drop_table("stop_point")
    op.drop_table("run")
    op.drop_table("role")
    op.drop_table("replica")
    op.drop_table("quarantine")
    op.drop_table("project")
    op.drop_table("production_task")
    op.drop_table("production_step")
    op.drop_table("period")
    op.drop_table("nomenclature")
    op.drop_table("ddm_message")
    op.drop_table("data_type")
    op.drop_table("container")
    op.drop_table("app_user")
    op.drop_table("ami_tag")
