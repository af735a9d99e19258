# Hooks survive pg_dump / pg_restore into another preloaded cluster.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA;
use MIME::Base64;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $src = new_node('dump_src');
$src->start;
create_extension($src);

my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
$src->safe_psql('postgres', qq{
	CREATE TABLE a (id int PRIMARY KEY, v text);
	CREATE SCHEMA app;
	CREATE TABLE app.b (code text PRIMARY KEY, n int);
	SELECT cocohooks.register_hook('a', 'post_save', '$recv->{url}/a/post',
		headers => '{"Authorization": "Bearer t0ken", "X-Tenant": "acme"}',
		secret => '$secret', timeout_ms => 2500, max_retries => 3);
	SELECT cocohooks.register_hook('a', 'pre_delete', '$recv->{url}/a/predel');
	SELECT cocohooks.register_hook('app.b', 'post_delete', '$recv->{url}/b/postdel');
	SELECT cocohooks.disable_hook(cocohooks.register_hook('app.b', 'post_save', '$recv->{url}/b/disabled'));
	SELECT cocohooks.register_hook('app.b', 'post_save', '$recv->{url}/b/post');
	INSERT INTO a VALUES (1, 'one');
	INSERT INTO app.b VALUES ('x', 1);
	-- BEFORE triggers of the table whose names sort before and after the
	-- hook's: the restore creates them around the hook triggers, and the
	-- AFTER trigger's coverage of pre_delete (the later one) is kept
	CREATE FUNCTION pass() RETURNS trigger LANGUAGE plpgsql AS
	  \$\$ BEGIN RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END; END \$\$;
	CREATE TRIGGER a_first BEFORE INSERT OR DELETE ON a FOR EACH ROW EXECUTE FUNCTION pass();
	CREATE TRIGGER "\xc3\xbcberpr\xc3\xbcfung" BEFORE DELETE ON a FOR EACH ROW EXECUTE FUNCTION pass();
	-- row filters: the restore numbers c's columns anew (the dropped one is
	-- gone) and gives app.is_big a new oid; the filters are compiled again
	-- from their text
	CREATE TABLE c (id int PRIMARY KEY, junk text, status text, n int);
	ALTER TABLE c DROP COLUMN junk;
	CREATE FUNCTION app.is_big(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v > 100';
	SELECT cocohooks.register_hook('c', 'post_save', '$recv->{url}/c/published',
		filter => 'NEW.status = ''published'' AND OLD.status IS DISTINCT FROM ''published''');
	SET search_path = app, public;
	SELECT cocohooks.register_hook('c', 'post_save', '$recv->{url}/c/big', filter => 'is_big(NEW.n)');
	RESET search_path;
});
like($src->safe_psql('postgres', "SELECT tgtype FROM pg_trigger WHERE tgname = '~cocohooks_post' AND tgrelid = 'a'::regclass"),
	qr/^(13|29)$/, 'the AFTER trigger also covers DELETE, for the pre_delete a later-named trigger sees');

my $hooks_sql = q{SELECT id, collection::text, event, url, headers::text, secret, enabled,
	timeout_ms, max_retries, filter FROM cocohooks.hooks ORDER BY id};
my $triggers_sql = q{SELECT tgrelid::regclass::text, tgname, tgtype, tgfoid::regproc::text,
	tgenabled FROM pg_trigger WHERE NOT tgisinternal
	AND tgrelid IN ('a'::regclass, 'app.b'::regclass) ORDER BY 1, 2};
my $hooks_src = $src->safe_psql('postgres', $hooks_sql);
my $dup_sql = q{SELECT count(*) || ':' || count(*) FILTER (WHERE n > 1) FROM (
	SELECT tgrelid, tgname, count(*) AS n FROM pg_trigger
	 WHERE NOT tgisinternal AND tgfoid = 'cocohooks.row_trigger'::regproc
	 GROUP BY tgrelid, tgname) s};
my $triggers_src = $src->safe_psql('postgres', $triggers_sql);
my $src_dup = $src->safe_psql('postgres', $dup_sql);
is(scalar(split /\n/, $hooks_src), 7, 'seven hooks registered');
like($hooks_src, qr/\|\(\(new\.status = 'published'::text\) AND \(old\.status IS DISTINCT FROM 'published'::text\)\)$/m,
	'a filter is kept as normalized text');
like($hooks_src, qr/\|app\.is_big\(new\.n\)$/m,
	'a filter names a function outside pg_catalog with its schema, whatever the search_path was');
my $tree_src = $src->safe_psql('postgres', q{SELECT filter_tree FROM cocohooks.hooks WHERE url LIKE '%/c/published'});

my $dump = PostgreSQL::Test::Utils::tempdir() . '/postgres.dump';
$src->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', 'postgres' ], 'pg_dump -Fc');
$src->stop;

my $dst = new_node('dump_dst');
$dst->start;
$dst->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'postgres', $dump ],
	'pg_restore -d postgres');
ok(defined wait_worker($dst, 30), 'worker running on the restored cluster');

is($dst->safe_psql('postgres', $hooks_sql), $hooks_src,
	'cocohooks.hooks restored identically (ids, headers, secret, disabled flag, filters)');
my $tree_dst = $dst->safe_psql('postgres', q{SELECT filter_tree FROM cocohooks.hooks WHERE url LIKE '%/c/published'});
like($tree_src, qr/:varattno 3 /, 'source: the filter reads status as column 3');
like($tree_dst, qr/:varattno 2 /, 'restored: the filter was compiled again and reads status as column 2');
unlike($tree_dst, qr/:varattno 3 /, 'restored: no trace of the old column number');
is($dst->safe_psql('postgres', $triggers_sql), $triggers_src,
	'the same hook triggers on the restored tables');
is($src_dup, '4:0', 'source: four hook triggers (a: pre and post, app.b: post, c: post)');
is($dst->safe_psql('postgres', $dup_sql), '4:0',
	'restored: the same four hook triggers, each exactly once');

# a new hook gets a fresh id (the sequence came along)
my $max_id = $dst->safe_psql('postgres', 'SELECT max(id) FROM cocohooks.hooks');
my $new_id = $dst->safe_psql('postgres',
	"SELECT cocohooks.register_hook('a', 'post_delete', '$recv->{url}/a/postdel')");
cmp_ok($new_id, '>', $max_id, 'a hook registered after restore gets a new id');

# API-tagged writes on the restored cluster are delivered
api_sql($dst, q{
	INSERT INTO a VALUES (2, 'two');
	DELETE FROM a WHERE id = 1;
	UPDATE app.b SET n = 2 WHERE code = 'x';
	DELETE FROM app.b WHERE code = 'x';
	INSERT INTO c VALUES (1, 'draft', 5);
	UPDATE c SET status = 'published' WHERE id = 1;
	UPDATE c SET n = 500 WHERE id = 1;
	UPDATE c SET n = 501 WHERE id = 1;
	UPDATE c SET status = 'archived', n = 1 WHERE id = 1;
});
ok(wait_deliveries($dst), 'wait_for_deliveries on the restored cluster');
my %paths;
$paths{ $_->{path} }++ for @{ records($recv) };
is_deeply(
	\%paths,
	{ '/a/post' => 1, '/a/predel' => 1, '/a/postdel' => 1, '/b/post' => 1, '/b/postdel' => 1,
	  '/c/published' => 1, '/c/big' => 2 },
	'each enabled hook delivered; the disabled hook stayed silent; the filtered hooks only on their rows');
my ($published) = @{ records($recv, sub { $_[0]{path} eq '/c/published' }) };
is(body_of($published)->{document}{status}, 'published', 'restored filter: fired on the change to published');
is_deeply([ map { body_of($_)->{document}{n} } @{ records($recv, sub { $_[0]{path} eq '/c/big' }) } ],
	[ 500, 501 ], 'restored filter with a user function: fired on the big rows only');

my ($post) = @{ records($recv, sub { $_[0]{path} eq '/a/post' }) };
is($post->{headers}{authorization}, 'Bearer t0ken', 'restored hook sends its headers');
is($post->{headers}{'x-tenant'}, 'acme', 'restored hook sends all its headers');
my $key = MIME::Base64::decode_base64(substr($secret, 6));
my $expect_sig = 'v1,' . MIME::Base64::encode_base64(
	Digest::SHA::hmac_sha256(
		"$post->{headers}{'webhook-id'}.$post->{headers}{'webhook-timestamp'}.$post->{body}", $key), '');
is($post->{headers}{'webhook-signature'}, $expect_sig,
	'restored hook signs with its secret (Standard Webhooks HMAC verified)');
is(body_of($post)->{document_id}, '2', 'payload of the restored hook');

$dst->stop;
done_testing();
