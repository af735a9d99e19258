# cocohooks: collection hooks for PostgreSQL tables (PGXS build)

EXTENSION = cocohooks
EXTVERSION = 0.3.0

MODULE_big = cocohooks
# bottom layer first (src/README: who may call whom)
OBJS = \
	src/settings.o \
	src/trace_context.o \
	src/own_transaction.o \
	src/event_message.o \
	src/db_slots.o \
	src/event_ring.o \
	src/worker_marks.o \
	src/event_store.o \
	src/sql_array.o \
	src/wal_position.o \
	src/wal_progress.o \
	src/wal_slot.o \
	src/extension_installed.o \
	src/row_json.o \
	src/row_filter.o \
	src/hook_filters.o \
	src/hook_cache.o \
	src/payload.o \
	src/pending_events.o \
	src/event_emit.o \
	src/upsert_tracker.o \
	src/row_trigger.o \
	src/as_owner.o \
	src/header_object.o \
	src/network_guard.o \
	src/hook_args.o \
	src/filter_compile.o \
	src/hook_triggers.o \
	src/hook_admin.o \
	src/backfill_admin.o \
	src/column_renames.o \
	src/redeliver.o \
	src/stats.o \
	src/commit_prepared.o \
	src/database_pause.o \
	src/utility_hook.o \
	src/extension_watch.o \
	src/signing_keys.o \
	src/failing_hooks.o \
	src/hook_settings.o \
	src/settings_retirement.o \
	src/gone_hooks.o \
	src/http1_wire.o \
	src/conn_io.o \
	src/http1_conn.o \
	src/http2_conn.o \
	src/tls_protocols.o \
	src/http_client.o \
	src/request_headers.o \
	src/origin_queue.o \
	src/hook_pace.o \
	src/hook_stats.o \
	src/retry_queue.o \
	src/parked_retries.o \
	src/retry_policy.o \
	src/document_order.o \
	src/batch_builder.o \
	src/delivery_log.o \
	src/delivery_engine.o \
	src/wal_scan.o \
	src/wal_merge.o \
	src/wal_source.o \
	src/saved_events.o \
	src/backfill_source.o \
	src/worker.o \
	src/launcher.o \
	src/wal_standby.o \
	src/module.o

# the install script of the version under development, the scripts of every
# released version as released, and an upgrade script from each of them
DATA = sql/$(EXTENSION)--$(EXTVERSION).sql \
	sql/$(EXTENSION)--0.1.0.sql \
	sql/$(EXTENSION)--0.2.0.sql \
	sql/$(EXTENSION)--0.1.0--0.2.0.sql \
	sql/$(EXTENSION)--0.2.0--0.3.0.sql

# PostgreSQL's own headers are not -Wextra clean for unused parameters.
# Warnings are errors in the test suite (make COCOHOOKS_WERROR=1), not in a
# user's build, where another compiler or a newer PostgreSQL may warn anew.
WARNINGS = -Wall -Wextra -Wno-unused-parameter
ifdef COCOHOOKS_WERROR
WARNINGS += -Werror
endif
PG_CPPFLAGS = -DCOCOHOOKS_VERSION=\"$(EXTVERSION)\"
PG_CFLAGS = $(WARNINGS) $(OPTFLAGS)
SHLIB_LINK = -lcurl -lnghttp2

# pg_regress: one file per topic in sql/, run in a throwaway preloaded server
REGRESS = setup registration bad_input network_guard payloads filters row_filters commit_semantics api_session delivery trace_context backfill batches
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=test/regress.conf

# TAP tests: restarts, signals, timing
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# no LLVM bitcode: JIT gains nothing here, and it would need clang to build
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after the include, which resets it
PROVE_FLAGS = -I test/lib
