# The network guard at connect time (docs/guarantees.md §8): deliveries
# reach only public addresses or addresses inside
# cocohooks.allowed_networks, checked on every address a host name resolves
# to and before a kept-alive connection is reused.  A blocked delivery fails
# at once, is not retried, and is logged with the address and the setting's
# name.
#
# Only loopback is ever connected to (the testing rule): the default
# setting blocks it, which is what this test relies on.  Every other range
# is checked without connecting, in sql/network_guard.sql.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $port = $recv->{port};
my $node = new_node('guard', allowed_networks => '');
$node->start;
create_extension($node);

is($node->safe_psql('postgres', 'SHOW cocohooks.allowed_networks'), '',
	'nothing is allowed by default');

# A tenant: a non-superuser who owns a table and registers a hook on it.
$node->safe_psql('postgres', q{
	CREATE ROLE tenant LOGIN;
	GRANT USAGE ON SCHEMA cocohooks TO tenant;
	GRANT CREATE ON SCHEMA public TO tenant;
});
my $tenant = $node->connstr('postgres') . ' user=tenant';
$node->safe_psql('postgres', qq{
	CREATE TABLE t (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('t', 'post_save',
		'http://localhost:$port/t', max_retries => 3);
}, connstr => $tenant);

my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT cocohooks.register_hook('t', 'post_save', 'http://127.0.0.1:$port/literal')",
	connstr => $tenant);
isnt($ret, 0, 'register_hook refuses a literal loopback address');
like($err, qr/ERROR:  url "http:\/\/127\.0\.0\.1:\d+\/literal" points to a non-public address outside "cocohooks\.allowed_networks"/,
	'the error says why');
like($err, qr/DETAIL:  127\.0\.0\.1 is a loopback address, and not inside "cocohooks\.allowed_networks"/,
	'the detail names the address, its kind and the setting');

# 1. default: a host name that resolves to loopback is blocked at connect time
my $before = stats($node);
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SET cocohooks.api_session = on; INSERT INTO t VALUES (1, 'blocked')",
	connstr => $tenant);
ok(wait_deliveries($node), 'the blocked delivery finished');
my $after = stats($node);
is($after->{failed} - $before->{failed}, 1, 'it failed');
is($after->{retried} - $before->{retried}, 0, 'and was not retried (max_retries 3)');
my $row = $node->safe_psql('postgres',
	"SELECT attempts, status_code IS NULL, error FROM cocohooks.deliveries WHERE document_id = '1' AND NOT success");
like($row, qr/^1\|t\|blocked: (127\.0\.0\.1|::1) is a loopback address, not in cocohooks\.allowed_networks$/,
	'logged after one attempt, with the address and the setting');
like(slurp_file($node->logfile, $log_offset),
	qr/LOG:  cocohooks could not deliver post_save event of collection "t" to hook \d+: blocked: (127\.0\.0\.1|::1) is a loopback address, not in cocohooks\.allowed_networks/,
	'the server log says so too');
is(scalar(@{ records($recv) }), 0, 'the receiver saw nothing');

# 2. allowed: delivered, and the connection is kept alive
set_allowed('127.0.0.0/8, ::1');
api_write(2);
ok(wait_deliveries($node), 'delivered once loopback is allowed');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/t' }) }), 1, 'the receiver got it');

# 3. narrowed again: the kept-alive connection is not reused
set_allowed('10.0.0.0/8');
$before = stats($node);
api_write(3);
ok(wait_deliveries($node), 'finished after the setting was narrowed');
$after = stats($node);
is($after->{failed} - $before->{failed}, 1, 'the delivery over a kept-alive connection was blocked');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/t' }) }), 1, 'the receiver got nothing more');
like($node->safe_psql('postgres',
		"SELECT error FROM cocohooks.deliveries WHERE document_id = '3'"),
	qr/^blocked: (127\.0\.0\.1|::1) is a loopback address/, 'logged as blocked');

# 4. IPv4-mapped IPv6: allowed only by an IPv6 range, not by its IPv4 one
set_allowed('::ffff:127.0.0.0/104');
$node->safe_psql('postgres', qq{
	CREATE TABLE m (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('m', 'post_save', 'http://[::ffff:127.0.0.1]:$port/m', max_retries => 3);
});
api_write(1, 'm');
ok(wait_deliveries($node), 'finished');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/m' }) }), 1,
	'a mapped loopback address is delivered to when an IPv6 range allows it');
set_allowed('127.0.0.0/8, ::1');
api_write(2, 'm');
ok(wait_deliveries($node), 'finished');
like($node->safe_psql('postgres',
		"SELECT error FROM cocohooks.deliveries WHERE collection = 'm'"),
	qr/^blocked: ::ffff:127\.0\.0\.1 is an IPv4-mapped address, not in cocohooks\.allowed_networks$/,
	'and blocked when only 127.0.0.0/8 and ::1 are allowed');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/m' }) }), 1, 'the receiver got nothing more');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT cocohooks.register_hook('m', 'post_save', 'http://[::ffff:127.0.0.1]:$port/m2')");
like($err, qr/DETAIL:  \[::ffff:127\.0\.0\.1\] is an IPv4-mapped address, and not inside "cocohooks\.allowed_networks"/,
	'register_hook refuses it too');

# 5. a bad value is refused and the old one stays
($ret, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET cocohooks.allowed_networks = '127.0.0.0/40'");
like($err, qr/invalid value for parameter "cocohooks\.allowed_networks"/, 'a bad range is refused');
like($err, qr/prefix length/, 'saying what is wrong with it');

$node->stop;
done_testing();

sub api_write
{
	my ($id, $table) = @_;
	$table //= 't';
	$node->safe_psql('postgres',
		"SET cocohooks.api_session = on; INSERT INTO $table VALUES ($id)",
		connstr => $table eq 't' ? $tenant : $node->connstr('postgres'));
	return;
}

# Sets cocohooks.allowed_networks and waits until the worker has it: a
# reload reaches the worker at its next wake-up, well within a second.
sub set_allowed
{
	my ($value) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET cocohooks.allowed_networks = '$value'");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	usleep(1_500_000);
	return;
}
