-- The network guard (docs/guarantees.md §8): which addresses register_hook accepts.
-- Nothing here connects anywhere: every hook is registered inside a
-- transaction that is rolled back, and no row is written.  What a
-- delivery does at connect time is tested in test/t/200_network_guard.pl.
SHOW cocohooks.allowed_networks;
-- which internal networks are allowed is not shown to other roles
CREATE ROLE regress_coco_tenant;
SET ROLE regress_coco_tenant;
DO $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY ARRAY['cocohooks.allowed_networks', 'cocohooks.ca_file'] LOOP
        BEGIN
            PERFORM current_setting(s);
            RAISE NOTICE '%: shown', s;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE '%: not shown (insufficient privilege)', s;
        END;
    END LOOP;
END $$;
SELECT count(*) AS settings_seen FROM pg_settings
 WHERE name IN ('cocohooks.allowed_networks', 'cocohooks.ca_file');
RESET ROLE;
DROP ROLE regress_coco_tenant;

CREATE TABLE ng_t (id int PRIMARY KEY);
CREATE FUNCTION ng_try(url text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
    hint text;
BEGIN
    PERFORM cocohooks.register_hook('ng_t', 'post_save', url);
    RETURN 'accepted';
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN 'refused: ' || detail;
END $$;

-- not public: refused unless inside cocohooks.allowed_networks
BEGIN;
SELECT u AS url, ng_try(u) FROM unnest(ARRAY[
    'http://0.0.0.0/',
    'http://0.1.2.3/',
    'http://10.0.0.1/',
    'http://10.255.255.255/',
    'http://100.64.0.1/',
    'http://100.127.255.254/',
    'http://169.254.169.254/latest/meta-data/',
    'http://169.254.0.1/',
    'http://172.16.0.1/',
    'http://172.31.255.255/',
    'https://192.168.1.1:8443/hooks',
    'http://192.0.0.8/',
    'http://192.0.2.1/',
    'http://198.18.0.1/',
    'http://198.51.100.7/',
    'http://203.0.113.9/',
    'http://224.0.0.1/',
    'http://239.255.255.250/',
    'http://240.0.0.1/',
    'http://255.255.255.255/',
    -- numeric forms reach the guard as dotted addresses
    'http://167772161/',
    'http://0xa9fea9fe/',
    'http://012.0.0.1/',
    'http://10.1/',
    'http://[::]/',
    'http://[fc00::1]/',
    'http://[fd12:3456::1]/',
    'http://[fe80::1]/',
    'http://[febf:ffff::1]/',
    'http://[fec0::1]/',
    'http://[ff02::1]/',
    'http://[::ffff:10.0.0.1]/',
    'http://[::ffff:8.8.8.8]/',
    'http://[::ffff:169.254.169.254]/',
    -- only an IPv6 range allows a mapped address; 127.0.0.0/8 does not
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:7f00:1]/',
    'http://[::10.0.0.1]/',
    'http://[64:ff9b::a00:1]/',
    'http://[64:ff9b:1::a00:1]/',
    'http://[2002:a00:1::1]/',
    'http://[2001::1]/',
    'http://[2001:db8::1]/',
    'http://[2001:1::1]/',
    'http://[2001:1ff::1]/',
    'http://[100::1]/',
    'http://[4000::1]/'
]) u;
ROLLBACK;

-- public, or inside the allowed ranges (this suite allows 127.0.0.0/8 and
-- ::1): accepted.  Host names are accepted here and checked on every
-- address they resolve to when the worker connects.
BEGIN;
SELECT u AS url, ng_try(u) FROM unnest(ARRAY[
    'http://127.0.0.1/',
    'http://127.5.6.7:9000/x',
    'http://2130706433/',
    'http://[::1]/',
    'http://8.8.8.8/',
    'https://1.1.1.1:8443/',
    'http://9.255.255.255/',
    'http://11.0.0.0/',
    'http://100.63.255.255/',
    'http://100.128.0.1/',
    'http://169.253.255.255/',
    'http://169.255.0.1/',
    'http://172.15.255.255/',
    'http://172.32.0.1/',
    'http://192.167.255.255/',
    'http://192.169.0.1/',
    'http://198.17.255.255/',
    'http://198.20.0.1/',
    'http://223.255.255.255/',
    'https://[2001:4860:4860::8888]/',
    'http://[2a00:1450:4001::200e]/',
    'http://[2001:200::1]/',
    'http://[3fff:ffff::1]/',
    'http://localhost/',
    'http://metadata.google.internal/'
]) u;
ROLLBACK;

-- the refusal as a user sees it
SELECT cocohooks.register_hook('ng_t', 'post_save', 'http://169.254.169.254/latest/meta-data/');
SELECT count(*) AS hooks_left FROM cocohooks.hooks WHERE collection = 'ng_t'::regclass;

-- the setting: a superuser's, read at reload; every range is checked
SET cocohooks.allowed_networks = '10.0.0.0/8';
ALTER SYSTEM SET cocohooks.allowed_networks = '10.0.0.0/33';
ALTER SYSTEM SET cocohooks.allowed_networks = '::1/129';
ALTER SYSTEM SET cocohooks.allowed_networks = 'example.com';
ALTER SYSTEM SET cocohooks.allowed_networks = '10.0.0.0/';
ALTER SYSTEM SET cocohooks.allowed_networks = '10.0.0.0/8, fd00::/8 192.168.0.1';
ALTER SYSTEM RESET cocohooks.allowed_networks;

DROP FUNCTION ng_try(text);
DROP TABLE ng_t;
