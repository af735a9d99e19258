-- cocohooks 0.1.0 -> 0.2.0 (ALTER EXTENSION cocohooks UPDATE).
--
-- Every schema change of 0.2.0 is made here as well as in
-- cocohooks--0.2.0.sql, so that an updated 0.1.0 install and a fresh 0.2.0
-- install end up the same (test/t/150_upgrade.pl compares them).  New
-- columns of cocohooks.hooks are appended, in the order the install script
-- lists them (src/hooks_catalog.h holds their numbers).
\echo Use "ALTER EXTENSION cocohooks UPDATE TO '0.2.0'" to load this file. \quit
