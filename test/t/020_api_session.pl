# Which sessions fire: libpq options, per role, SET LOCAL, plain sessions.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('api');
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE docs (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('docs', 'pre_save', '$recv->{url}/pre');
	SELECT cocohooks.register_hook('docs', 'post_save', '$recv->{url}/post');
	CREATE ROLE api_user LOGIN;
	CREATE ROLE plain_user LOGIN;
	GRANT INSERT, SELECT ON docs TO api_user, plain_user;
	ALTER ROLE api_user SET cocohooks.api_session = on;
	REVOKE ALL ON SCHEMA cocohooks FROM PUBLIC;
});
my $before = stats($node);

# 1. libpq options in the connection string
my $connstr = $node->connstr('postgres');
my ($ret, $out, $err) = $node->psql('postgres',
	"SHOW cocohooks.api_session; INSERT INTO docs VALUES (1, 'options');",
	connstr => "$connstr options='-c cocohooks.api_session=on'");
is($ret, 0, 'insert through options= connection') or diag($err);
is($out, 'on', 'options= sets cocohooks.api_session');

# 2. per role, without any privilege on schema cocohooks
($ret, $out, $err) = $node->psql('postgres',
	"SHOW cocohooks.api_session; INSERT INTO docs VALUES (2, 'role');",
	connstr => "$connstr user=api_user");
is($ret, 0, 'insert as api_user (no privilege on schema cocohooks)') or diag($err);
is($out, 'on', 'ALTER ROLE ... SET applies to api_user');

# 3. SET LOCAL: that transaction only
($ret, $out, $err) = $node->psql('postgres', q{
	BEGIN;
	SET LOCAL cocohooks.api_session = on;
	INSERT INTO docs VALUES (3, 'set local');
	COMMIT;
	INSERT INTO docs VALUES (4, 'after set local');
	BEGIN;
	INSERT INTO docs VALUES (5, 'next transaction');
	COMMIT;
	SHOW cocohooks.api_session;
}, connstr => "$connstr user=plain_user");
is($ret, 0, 'SET LOCAL session ran') or diag($err);
is($out, 'off', 'SET LOCAL ends with its transaction');

# 4. plain sessions: nothing
$node->safe_psql('postgres',
	"INSERT INTO docs SELECT g, 'plain' FROM generate_series(6, 15) g");
$node->safe_psql('postgres',
	"UPDATE docs SET v = 'plain update' WHERE id = 1");
($ret, $out, $err) = $node->psql('postgres',
	"INSERT INTO docs VALUES (16, 'plain role')",
	connstr => "$connstr user=plain_user");
is($ret, 0, 'plain_user insert') or diag($err);

ok(wait_deliveries($node), 'wait_for_deliveries');
my $recs = records($recv);
is(scalar(@$recs), 6, 'exactly 6 deliveries (pre and post for ids 1, 2, 3)');
my %seen;
for my $r (@$recs)
{
	my $b = body_of($r);
	$seen{"$r->{path} $b->{event} $b->{document}{id}"}++;
}
is_deeply(
	\%seen,
	{
		'/pre pre_save 1' => 1,
		'/post post_save 1' => 1,
		'/pre pre_save 2' => 1,
		'/post post_save 2' => 1,
		'/pre pre_save 3' => 1,
		'/post post_save 3' => 1,
	},
	'only the API-tagged writes fired, each once per hook');
my $after = stats($node);
is($after->{queued} - $before->{queued}, 6, 'stats.queued increased by 6');
is($after->{delivered} - $before->{delivered}, 6, 'stats.delivered increased by 6');
is($node->safe_psql('postgres', 'SELECT count(*) FROM docs'), '16', 'all rows written');

$node->stop;
done_testing();
