# A hook's pace (issue 22): max_per_second spaces its requests (a token
# bucket of a tenth of a second's worth, at least one), max_concurrent caps
# its requests in flight, and a receiver that answers 429 or 503 gets fewer
# requests at once (AIMD) while every delivery still succeeds.  A paced
# hook holds back no other hook, keeps per-document order, paces its
# redeliveries too, and a change of pace applies to waiting deliveries at
# once without a new settings version.  Timings are read from the
# receiver's records (received_at, and in_flight: its requests to the path
# being handled when each came).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use List::Util qw(max sum);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('pace', conf => "cocohooks.log_deliveries = 'all'\n"
	  . "cocohooks.retry_max_backoff = '1s'\n");
$node->start;
create_extension($node);

sub on_path
{
	my ($path) = @_;
	return records($recv, sub { $_[0]{path} eq $path });
}

# arrival times of the records, sorted
sub times_of
{
	my ($recs) = @_;
	return [ sort { $a <=> $b } map { $_->{received_at} } @$recs ];
}

sub failed
{
	my ($hook) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hook AND NOT success");
}

my $started;

# --- max_per_second => 5: 60 events, counted over 10 s of arrivals ------------
my $hrate = $node->safe_psql('postgres', qq{
	CREATE TABLE rate (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('rate', 'post_save', '$recv->{url}/rate', max_per_second => 5);
});
api_sql($node, 'INSERT INTO rate SELECT generate_series(1, 60)');
my $recs = wait_records($recv, 60, 40, sub { $_[0]{path} eq '/rate' });
is(scalar(@$recs), 60, 'max_per_second 5: all 60 events arrived');
my $t = times_of($recs);
my $in_10s = grep { $_ < $t->[0] + 10 } @$t;
my $rate = ($#$t) / ($t->[-1] - $t->[0]);
my $min_gap = (sort { $a <=> $b } map { $t->[$_] - $t->[ $_ - 1 ] } 1 .. $#$t)[0];
diag(sprintf('max_per_second 5: %d arrivals in the first 10 s, %.3f/s over all %d (%.2f s), '
	  . 'smallest gap %.3f s', $in_10s, $rate, scalar(@$t), $t->[-1] - $t->[0], $min_gap));
cmp_ok($in_10s, '>=', 45, 'at least 45 arrivals in the first 10 s (5/s - 10 %)');
cmp_ok($in_10s, '<=', 55, 'at most 55 arrivals in the first 10 s (5/s + 10 %)');
cmp_ok(abs($rate - 5), '<=', 0.5, 'the rate over all arrivals is 5/s within 10 %');
ok(wait_deliveries($node, '30 s'), 'they finished');
is(failed($hrate), '0', 'none failed');

# redeliveries go at the hook's pace too
$node->safe_psql('postgres', qq{
	SELECT count(cocohooks.redeliver(id)) FROM cocohooks.deliveries WHERE hook_id = $hrate AND success
	AND id IN (SELECT id FROM cocohooks.deliveries WHERE hook_id = $hrate ORDER BY id LIMIT 11)});
$recs = wait_records($recv, 71, 30, sub { $_[0]{path} eq '/rate' });
$t = times_of([ @$recs[ 60 .. $#$recs ] ]);
is(scalar(@$t), 11, 'the 11 redeliveries arrived');
diag(sprintf('11 redeliveries over %.2f s', $t->[-1] - $t->[0]));
cmp_ok($t->[-1] - $t->[0], '>=', 1.8, 'spread at 5/s (10 gaps of 200 ms, 10 % off at most)');

# a fraction: max_per_second => 0.5 is one request every 2 s
$node->safe_psql('postgres', qq{
	CREATE TABLE half (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('half', 'post_save', '$recv->{url}/half', max_per_second => 0.5);
});
api_sql($node, 'INSERT INTO half SELECT generate_series(1, 3)');
$recs = wait_records($recv, 3, 20, sub { $_[0]{path} eq '/half' });
$t = times_of($recs);
is(scalar(@$t), 3, 'max_per_second 0.5: the 3 events arrived');
diag(sprintf('max_per_second 0.5: gaps %.2f s and %.2f s', $t->[1] - $t->[0], $t->[2] - $t->[1]));
cmp_ok(abs($t->[$_] - $t->[ $_ - 1 ] - 2), '<=', 0.2, "gap $_ is 2 s") for 1 .. 2;

# a hook disabled by 410 Gone: its deliveries waiting for its pace fail at
# once, not at its pace
my $hgone = $node->safe_psql('postgres', qq{
	CREATE TABLE gone (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('gone', 'post_save', '$recv->{url}/status/410', max_per_second => 1);
});
$started = time();
api_sql($node, 'INSERT INTO gone SELECT generate_series(1, 20)');
ok(wait_deliveries($node, '30 s'), '410 Gone while 19 wait for the pace: all finished');
my $gone_took = time() - $started;
diag(sprintf('410 Gone: 20 deliveries finished in %.2f s', $gone_took));
cmp_ok($gone_took, '<', 8, 'at once, not at 1/s');
is(scalar(@{ on_path('/status/410') }), 1, 'one request was sent');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE error LIKE 'not sent: the receiver answered 410 Gone%'), count(payload)
	FROM cocohooks.deliveries WHERE hook_id = $hgone AND NOT success}),
	'19|20', 'the other 19 are logged not sent, every one with its payload');

# --- max_concurrent => 1: never two requests in flight ------------------------
my $hone = $node->safe_psql('postgres', qq{
	CREATE TABLE one (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('one', 'post_save', '$recv->{url}/slow/100', max_concurrent => 1);
});
api_sql($node, 'INSERT INTO one SELECT generate_series(1, 20)');
$recs = wait_records($recv, 20, 30, sub { $_[0]{path} eq '/slow/100' });
is(scalar(@$recs), 20, 'max_concurrent 1: all 20 events arrived');
is(max(map { $_->{in_flight} } @$recs), 1, 'never two requests in flight');
$t = times_of($recs);
cmp_ok($t->[-1] - $t->[0], '>=', 1.9, 'one after the other: 19 answers of 100 ms apart at least');

# the same receiver without max_concurrent gets them at once
$node->safe_psql('postgres', qq{
	CREATE TABLE many (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('many', 'post_save', '$recv->{url}/slow/101');
});
api_sql($node, 'INSERT INTO many SELECT generate_series(1, 20)');
$recs = wait_records($recv, 20, 30, sub { $_[0]{path} eq '/slow/101' });
cmp_ok(max(map { $_->{in_flight} } @$recs), '>', 1,
	'without max_concurrent, requests overlap (the check above can fail)');
ok(wait_deliveries($node, '30 s'), 'they finished');
is(failed($hone), '0', 'none failed');

# --- a receiver answering 429 while more than 4 requests are in flight -------
my $hbusy = $node->safe_psql('postgres', qq{
	CREATE TABLE busy (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('busy', 'post_save', '$recv->{url}/busy/4/100');
});
$started = time();
api_sql($node, 'INSERT INTO busy SELECT generate_series(1, 200)');
ok(wait_deliveries($node, '120 s'), '429 under load: all 200 deliveries finished');
my $took = time() - $started;
$recs = on_path('/busy/4/100');
my $ok = by_webhook_id([ grep { $_->{in_flight} <= 4 } @$recs ]);
is(scalar(keys %$ok), 200, 'every one of the 200 events was answered 200');
is(failed($hbusy), '0', 'none failed (each 429 was retried)');
my $n429 = grep { $_->{in_flight} > 4 } @$recs;
my @first = @$recs[ 0 .. 39 ];
my @last = @$recs[ $#$recs - 39 .. $#$recs ];
my $busy_first = grep { $_->{in_flight} > 4 } @first;
my $busy_last = grep { $_->{in_flight} > 4 } @last;
diag(sprintf('429 under load: %d requests for 200 events in %.1f s, %d answered 429; '
	  . 'most in flight: %d in the first 40 requests, %d in the last 40; 429s: %d and %d',
	scalar(@$recs), $took, $n429, max(map { $_->{in_flight} } @first),
	max(map { $_->{in_flight} } @last), $busy_first, $busy_last));
# the mean, not the most: a request past 4 is answered at once, so the
# most seen at once stays near 5 whenever the worker gets there at all,
# and on a loaded machine it gets there only that far (CI on 15: 5 and 5)
my $mean = sub { my $t = 0; $t += $_->{in_flight} for @_; $t / scalar(@_) };
diag(sprintf('mean in flight: %.2f in the first 40 requests, %.2f in the last 40',
	$mean->(@first), $mean->(@last)));
cmp_ok($mean->(@last), '<', $mean->(@first), 'the concurrency it sees drops');
cmp_ok($busy_last, '<', $busy_first, 'and so do the 429s');
cmp_ok($busy_last, '<=', 10, 'at most a quarter of the last 40 requests are answered 429');

# --- a paced hook holds back no other hook on the same table ----------------
my ($hslow, $hfast) = split /\n/, $node->safe_psql('postgres', qq{
	CREATE TABLE two (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('two', 'post_save', '$recv->{url}/paced', max_per_second => 1);
	SELECT cocohooks.register_hook('two', 'post_save', '$recv->{url}/unpaced');
});
$started = time();
api_sql($node, 'INSERT INTO two SELECT generate_series(1, 30)');
$recs = wait_records($recv, 30, 10, sub { $_[0]{path} eq '/unpaced' });
my $fast_took = time() - $started;
is(scalar(@$recs), 30, 'the other hook\'s 30 events arrived');
cmp_ok($fast_took, '<', 5, 'promptly');
my $paced_then = scalar(@{ on_path('/paced') });
diag(sprintf('unpaced hook: 30 events in %.2f s; the paced one had %d by then',
	$fast_took, $paced_then));
cmp_ok($paced_then, '<', 10, 'while the paced one went at its pace');

# a change of pace applies to the waiting deliveries, without a new version
my $version = $node->safe_psql('postgres', "SELECT settings_version FROM cocohooks.hooks WHERE id = $hslow");
$node->safe_psql('postgres', "UPDATE cocohooks.hooks SET max_per_second = NULL WHERE id = $hslow");
is($node->safe_psql('postgres', "SELECT settings_version FROM cocohooks.hooks WHERE id = $hslow"),
	$version, 'a change of pace makes no new settings version');
$started = time();
$recs = wait_records($recv, 30, 15, sub { $_[0]{path} eq '/paced' });
is(scalar(@$recs), 30, 'the paced hook\'s waiting events arrived');
cmp_ok(time() - $started, '<', 10, 'at once, its pace lifted');
ok(wait_deliveries($node, '30 s'), 'they finished');

# --- per-document order under max_per_second ---------------------------------
my $hdoc = $node->safe_psql('postgres', qq{
	CREATE TABLE docs (id text PRIMARY KEY, v int NOT NULL);
	INSERT INTO docs VALUES ('a', 0), ('b', 0), ('c', 0);
	SELECT cocohooks.register_hook('docs', 'post_save', '$recv->{url}/docs', max_per_second => 20);
});
api_sql($node, q{
	DO $$
	BEGIN
		FOR i IN 1..10 LOOP
			UPDATE docs SET v = i;
			COMMIT;
		END LOOP;
	END $$;
});
$recs = wait_records($recv, 30, 30, sub { $_[0]{path} eq '/docs' });
is(scalar(@$recs), 30, 'ordered and paced: all 30 events arrived');
my (%last, $back, %got);
$back = 0;
for my $r (sort { $a->{received_at} <=> $b->{received_at} } @$recs)
{
	my $b = body_of($r);
	my ($doc, $v) = ($b->{document_id}, $b->{document}{v});
	$back++ if defined $last{$doc} && $v < $last{$doc};
	$last{$doc} = $v;
	$got{$doc}++;
}
is($back, 0, 'no document went back in its history');
is_deeply([ map { $got{$_} } sort keys %got ], [ 10, 10, 10 ], 'each document got its 10 versions')
  or diag(explain(\%got));
$t = times_of($recs);
cmp_ok($t->[-1] - $t->[0], '>=', 29 / 20 * 0.9, 'at 20/s at most');
ok(wait_deliveries($node, '30 s'), 'they finished');
is(failed($hdoc), '0', 'none failed');

$node->stop;
done_testing();
