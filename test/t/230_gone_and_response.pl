# A receiver that answers 410 Gone disables its hook (hooks.enabled false,
# hooks.disabled_reason says why and when, the server log says so) and the
# hook's events written before the answer are not sent; enable_hook clears
# it.  deliveries.response keeps the first 1 kB of the last attempt's
# response body; a body is read up to 64 kB, no more (docs/guarantees.md §8).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('gone', conf => qq{
cocohooks.max_host_connections = 1
cocohooks.log_deliveries = all
});
$node->start;
create_extension($node);

# --- 410 Gone
my $hook = $node->safe_psql('postgres', qq{
	CREATE TABLE g (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('g', 'post_save', '$recv->{url}/status/410', max_retries => 5);
});
my $before = stats($node);
my $log_offset = -s $node->logfile;
# one receiver connection: the 20 events go one at a time, the first gets the 410
api_sql($node, 'INSERT INTO g SELECT generate_series(1, 20)');
ok(wait_deliveries($node), 'finished');
my $after = stats($node);
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/status/410' }) }), 1,
	'the receiver got one request: the events after the 410 were not sent');
is($after->{failed} - $before->{failed}, 20, 'all 20 failed');
is($after->{retried} - $before->{retried}, 0, 'none retried (max_retries 5)');
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status_code = 410 AND attempts = 1), "
		  . "count(*) FILTER (WHERE status_code IS NULL AND attempts = 0 AND error LIKE 'not sent: the receiver answered 410 Gone at % and the hook was disabled'), "
		  . "count(*) FILTER (WHERE payload IS NOT NULL) FROM cocohooks.deliveries WHERE hook_id = $hook"),
	'1|19|20', 'logged: the 410 once, 19 not sent, all with their payload');
like($node->safe_psql('postgres', "SELECT enabled || ' ' || disabled_reason FROM cocohooks.hooks WHERE id = $hook"),
	qr/^false receiver answered 410 Gone at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/,
	'the hook is disabled, and disabled_reason says why and when');
like(slurp_file($node->logfile, $log_offset),
	qr/LOG:  cocohooks disabled hook $hook: its receiver answered 410 Gone/,
	'the server log says so');

# new writes fire nothing while it is disabled
$before = stats($node);
api_sql($node, 'INSERT INTO g VALUES (21)');
ok(wait_deliveries($node), 'finished');
is(stats($node)->{queued} - $before->{queued}, 0, 'a disabled hook fires nothing');

# enable_hook clears the reason, and events written after it are sent
is($node->safe_psql('postgres', "SELECT cocohooks.enable_hook($hook)"), 't', 'enable_hook');
is($node->safe_psql('postgres', "SELECT enabled, disabled_reason IS NULL FROM cocohooks.hooks WHERE id = $hook"),
	't|t', 'enabled, disabled_reason cleared');
api_sql($node, 'INSERT INTO g VALUES (22)');
ok(wait_deliveries($node), 'finished');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/status/410' }) }), 2,
	'an event written after enable_hook is sent');
is($node->safe_psql('postgres', "SELECT enabled FROM cocohooks.hooks WHERE id = $hook"),
	'f', 'and its 410 disables the hook again');

# --- the response excerpt
$node->safe_psql('postgres', qq{
	CREATE TABLE r (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/body/3000');
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/body/300000');
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/body/300000?status=500', max_retries => 0);
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/status/204');
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/body/17?status=422', max_retries => 0);
});
api_sql($node, 'INSERT INTO r VALUES (1)');
ok(wait_deliveries($node), 'finished');
my %resp = map { my ($u, @rest) = split /\|/; ($u => join('|', @rest)) } split /\n/,
  $node->safe_psql('postgres', q{
	SELECT substring(h.url from '/(?:body|status)/.*$'), d.success, d.status_code,
	       coalesce(d.error, ''), length(d.response), d.response = left(repeat('0123456789', 110), length(d.response))
	  FROM cocohooks.deliveries d JOIN cocohooks.hooks h ON h.id = d.hook_id
	 WHERE d.collection = 'r'});
is($resp{'/body/3000'}, 't|200||1024|t', 'a 3,000-byte body: its first 1 kB kept');
is($resp{'/body/300000'}, 't|200||1024|t',
	'a 300 kB body: the delivery succeeds, reading stopped at 64 kB, its first 1 kB kept');
is($resp{'/body/300000?status=500'}, 'f|500|receiver answered with HTTP status 500|1024|t',
	'the same with status 500: the status counts, the first 1 kB kept');
is($resp{'/status/204'}, 't|204||0|t', 'no body: an empty response');
is($resp{'/body/17?status=422'}, 'f|422|receiver answered with HTTP status 422|17|t',
	'a short body is kept whole');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE collection = 'g' AND response IS NULL AND status_code IS NOT NULL"),
	'0', 'every answered attempt has its response');

$node->stop;
done_testing();
