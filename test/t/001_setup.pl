# Setup: shared_preload_libraries is required, one database only, the worker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

# Without shared_preload_libraries
my $node = new_node('setup', preload => 0);
$node->start;

my ($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION cocohooks');
isnt($ret, 0, 'CREATE EXTENSION fails without shared_preload_libraries');
like(
	$err,
	qr/ERROR:\s+cocohooks must be loaded via "shared_preload_libraries"/,
	'error says it must be loaded via shared_preload_libraries');
like(
	$err,
	qr/HINT:\s+.*shared_preload_libraries.*restart/,
	'hint tells how to fix it');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_extension WHERE extname = 'cocohooks'"),
	'0', 'extension not created');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'cocohooks'"),
	'0', 'schema cocohooks not left behind');

# Now preloaded.  cocohooks.database (0.1's) is accepted and ignored
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'cocohooks'\ncocohooks.database = 'postgres'\ncocohooks.allowed_networks = '127.0.0.0/8'\n");
$node->restart;
# the launcher warns once it runs, which can be after restart() returns
ok(wait_until('the cocohooks.database WARNING', 10,
		sub { $node->log_contains(qr/WARNING:  "cocohooks\.database" is ignored/) }),
	'cocohooks.database: a WARNING at server start, and the server starts');
$node->safe_psql('postgres', 'CREATE DATABASE other');

($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION cocohooks');
is($ret, 0, 'CREATE EXTENSION works in postgres') or diag($err);
is($node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'cocohooks'"),
	'0.3.0', 'extension version 0.3.0 by default');
($ret, $out, $err) = $node->psql('other', 'CREATE EXTENSION cocohooks');
is($ret, 0, 'CREATE EXTENSION works in another database too') or diag($err);

my $pid = wait_worker($node, 30);
ok(defined $pid, 'worker visible in pg_stat_activity as "cocohooks worker"');
ok(wait_until('a worker per database', 30, sub {
		$node->safe_psql('postgres',
			"SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'cocohooks worker'") eq 'other,postgres' }),
	'one worker per database with the extension: other and postgres');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'cocohooks launcher' AND datid IS NULL"),
	'1', 'one launcher, connected to no database');

$node->stop;
done_testing();
