# Prometheus through the real postgres_exporter (issue 23): Debian's
# prometheus-postgres-exporter runs against the test cluster with
# contrib/postgres_exporter.yaml, and /metrics, scraped on loopback, shows
# the per-database and per-hook figures after known deliveries and
# failures, with their types, and no URL among them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use HTTP::Tiny;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
ok(-x $exporter, 'the Debian exporter is installed (test/deps)') or BAIL_OUT('no exporter');
my $queries = "$FindBin::RealBin/../../contrib/postgres_exporter.yaml";
ok(-r $queries, 'the queries file ships in contrib/');

my $recv = start_receiver();
my $node = new_node('prometheus');
$node->start;
create_extension($node);

my ($hok, $hbad, $hslow) = split /\n/, $node->safe_psql('postgres', qq{
	CREATE TABLE posts (id int PRIMARY KEY, title text);
	SELECT cocohooks.register_hook('posts', 'post_save', '$recv->{url}/status/200');
	SELECT cocohooks.register_hook('posts', 'post_save', '$recv->{url}/status/500',
		max_retries => 1, secret => 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0');
	SELECT cocohooks.register_hook('posts', 'post_delete', '$recv->{url}/slow/300');
});
api_sql($node, "INSERT INTO posts SELECT g, 't' || g FROM generate_series(1, 5) g");
api_sql($node, 'DELETE FROM posts WHERE id <= 2');
ok(wait_deliveries($node, '60 s'), 'the deliveries finished');

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = 'host=' . $node->host . ' port=' . $node->port
  . ' user=' . getpwuid($<) . ' dbname=postgres sslmode=disable';
my ($out, $err) = ('', '');
# only our queries and the exporter's own figures: its built-in collectors
# (named differently from one version to the next: Debian 12 has 0.11,
# Debian 13 0.17) do not all know every PostgreSQL version
my ($help_out, $help_err) = ('', '');
IPC::Run::run([ $exporter, '--help' ], '>', \$help_out, '2>', \$help_err);
my %collectors = map { $_ => 1 } ("$help_out$help_err" =~ /--(?:\[no-\])?collector\.(\w+)/g);
my @no_collectors = map { "--no-collector.$_" } sort keys %collectors;
note("turned off: @no_collectors");
my $h = IPC::Run::start(
	[ $exporter, "--web.listen-address=127.0.0.1:$port",
	  "--extend.query-path=$queries", '--disable-default-metrics',
	  '--disable-settings-metrics', @no_collectors ],
	'<', \undef, '>', \$out, '2>', \$err,
	init => sub { $ENV{DATA_SOURCE_NAME} = $dsn });

my $http = HTTP::Tiny->new(timeout => 10);
my $metrics = '';
wait_until('the exporter answers with our metrics', 60, sub {
	my $r = $http->get("http://127.0.0.1:$port/metrics");
	$metrics = $r->{success} ? $r->{content} : '';
	return $metrics =~ /^cocohooks_hook_delivered_total/m;
});
note(join "\n", grep { /^(# TYPE )?cocohooks/ } split /\n/, $metrics);

# one sample's value: name and the labels that must match
sub sample
{
	my ($name, %labels) = @_;
	for my $line (split /\n/, $metrics)
	{
		next unless $line =~ /^\Q$name\E\{([^}]*)\} (\S+)$/;
		my ($l, $v) = ($1, $2);
		my %got = $l =~ /(\w+)="([^"]*)"/g;
		next if grep { !defined $got{$_} || $got{$_} ne $labels{$_} } keys %labels;
		return $v + 0;
	}
	return undef;
}

is(sample('pg_exporter_last_scrape_error'), undef, '(an unlabelled sample is not matched)');
like($metrics, qr/^pg_exporter_last_scrape_error 0$/m, 'the scrape had no error');
like($metrics, qr/^pg_exporter_user_queries_load_error\{[^}]*\} 0$/m, 'the queries file loaded');

# per database
is(sample('cocohooks_delivered_total', datname => 'postgres'), 7, 'cocohooks_delivered_total: 5 saves + 2 deletes');
is(sample('cocohooks_failed_total', datname => 'postgres'), 5, 'cocohooks_failed_total: the 500 hook');
is(sample('cocohooks_retried_total', datname => 'postgres'), 5, 'cocohooks_retried_total: one retry each');
is(sample('cocohooks_in_flight', datname => 'postgres'), 0, 'cocohooks_in_flight');
ok(defined sample('cocohooks_wal_retained_bytes', datname => 'postgres'), 'cocohooks_wal_retained_bytes');
like($metrics, qr/^# TYPE cocohooks_delivered_total counter$/m, 'a counter');
like($metrics, qr/^# TYPE cocohooks_in_flight gauge$/m, 'a gauge');

# per hook
my %ok = (hook_id => $hok, collection => 'posts', event => 'post_save', datname => 'postgres');
my %bad = (%ok, hook_id => $hbad);
my %slow = (%ok, hook_id => $hslow, event => 'post_delete');
is(sample('cocohooks_hook_delivered_total', %ok), 5, 'per hook: delivered');
is(sample('cocohooks_hook_queued_total', %ok), 5, 'per hook: queued');
is(sample('cocohooks_hook_failed_total', %bad), 5, 'per hook: failed');
is(sample('cocohooks_hook_delivered_total', %slow), 2, 'the delete hook: delivered');
is(sample('cocohooks_hook_attempts_total', %ok, outcome => '2xx'), 5, 'attempts by outcome: 2xx');
is(sample('cocohooks_hook_attempts_total', %bad, outcome => '5xx'), 10, 'attempts by outcome: 5xx, retries included');
is(sample('cocohooks_hook_attempts_total', %bad, outcome => '2xx'), 0, 'and no 2xx');
is(sample('cocohooks_hook_consecutive_failures', %bad), 10, 'consecutive failures');
cmp_ok(sample('cocohooks_hook_failing_since_timestamp_seconds', %bad), '>', time() - 600,
	'failing since: a recent time');
is(sample('cocohooks_hook_failing_since_timestamp_seconds', %ok), 0, 'a healthy hook: 0');
cmp_ok(sample('cocohooks_hook_last_success_timestamp_seconds', %ok), '>', time() - 600,
	'last success: a recent time');
is(sample('cocohooks_hook_lag_seconds', %ok), 0, 'nothing waiting: no lag');
is(sample('cocohooks_hook_retrying', %bad), 0, 'and nothing retrying once it failed for good');
is(sample('cocohooks_hook_enabled', %ok), 1, 'enabled');
is(sample('cocohooks_hook_filter_errors_total', %ok), 0, 'no filter errors');
like($metrics, qr/^# TYPE cocohooks_hook_latency_seconds histogram$/m, 'latency is a histogram');
is(sample('cocohooks_hook_latency_seconds_count', %slow), 2, 'two latencies of the slow hook');
is(sample('cocohooks_hook_latency_seconds_bucket', %slow, le => '0.25'), 0,
	'none at most 0.25 s: its receiver takes 300 ms');
is(sample('cocohooks_hook_latency_seconds_bucket', %slow, le => '+Inf'), 2, 'both under +Inf');
my $sum = sample('cocohooks_hook_latency_seconds_sum', %slow);
ok($sum >= 0.6 && $sum < 30, "their sum ($sum s) is at least 2 x 300 ms");
like($metrics, qr/^# TYPE cocohooks_hook_delivered_total counter$/m, 'per hook counters are counters');
like($metrics, qr/^# TYPE cocohooks_hook_lag_seconds gauge$/m, 'lag is a gauge');

my @ours = grep { /^cocohooks/ } split /\n/, $metrics;
ok(!grep({ /http|127\.0\.0\.1|status\/|whsec|url/i } @ours),
	'no URL, address or secret in any of our ' . scalar(@ours) . ' samples');

# a failure the exporter sees next scrape
api_sql($node, 'INSERT INTO posts VALUES (100, \'x\')');
ok(wait_deliveries($node, '60 s'), 'one more');
$metrics = $http->get("http://127.0.0.1:$port/metrics")->{content};
is(sample('cocohooks_hook_failed_total', %bad), 6, 'the next scrape counts the new failure');
is(sample('cocohooks_hook_delivered_total', %ok), 6, 'and the new delivery');

$h->kill_kill;
$node->stop;

# the example alerts of docs/monitoring.md are valid rules over these metrics
my $doc = slurp_file("$FindBin::RealBin/../../docs/monitoring.md");
my ($rules) = $doc =~ /## Example alerts.*?```yaml\n(.*?)```/s;
ok(defined $rules, 'docs/monitoring.md has example alerts');
my $rules_file = PostgreSQL::Test::Utils::tempdir() . '/rules.yml';
open(my $fh, '>', $rules_file) or die "$rules_file: $!";
print $fh $rules;
close $fh;
my ($check_out, $check_err) = ('', '');
IPC::Run::run([ 'promtool', 'check', 'rules', $rules_file ], '>', \$check_out, '2>', \$check_err);
like($check_out, qr/SUCCESS: 4 rules found/, 'promtool accepts them');
for my $metric ($rules =~ /\b(cocohooks_\w+)/g)
{
	my $base = $metric =~ s/_bucket$//r;
	like($metrics, qr/^# TYPE \Q$base\E /m, "the rules' $metric is exported");
}
done_testing();
