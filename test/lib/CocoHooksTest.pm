# Shared helpers for the cocohooks TAP tests.
#
#   my $node = CocoHooksTest::new_node('main', conf => "cocohooks.queue_size = '64kB'\n");
#   $node->start;
#   CocoHooksTest::create_extension($node);
#   my $recv = CocoHooksTest::start_receiver();      # killed at END
#   my $url  = "$recv->{url}/some/path";
#   my $recs = CocoHooksTest::records($recv);         # array of hashes
#   CocoHooksTest::wait_until('what', 10, sub { ...true when done... });
#
# Every wait is bounded: it polls every 100 ms until a deadline.
package CocoHooksTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(new_node create_extension start_receiver stop_receiver
  records wait_until wait_records wait_deliveries stats worker_pid
  wait_worker api_sql body_of restart_receiver by_webhook_id
  proc_status_kb start_verifier try_psql wait_server wal_messages
  make_test_ca make_test_cert);

my $receiver_script =
  File::Spec->rel2abs(dirname(__FILE__) . '/../receiver.py');
my $h2_receiver_script =
  File::Spec->rel2abs(dirname(__FILE__) . '/../h2_receiver.mjs');
my $raw_receiver_script =
  File::Spec->rel2abs(dirname(__FILE__) . '/../raw_receiver.mjs');
my @receivers;

# A cluster with cocohooks preloaded (unless preload => 0), serving
# database 'postgres'; extra settings in conf.  Not started.
sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	# wal_level = replica (initdb's default; the test cluster's is minimal)
	# lets cocohooks.durability = wal, the default, keep WAL for events
	my $conf = "max_connections = 30\nwal_level = replica\nmax_wal_senders = 0\n";
	if (!defined $opts{preload} || $opts{preload})
	{
		$conf .= "shared_preload_libraries = 'cocohooks'\n";
		# the test receivers are on loopback, which the network guard
		# blocks unless allowed (allowed_networks => '' tests the default)
		$conf .= "cocohooks.allowed_networks = '"
		  . ($opts{allowed_networks} // '127.0.0.0/8, ::1') . "'\n";
	}
	$conf .= $opts{conf} if defined $opts{conf};
	$node->append_conf('postgresql.conf', $conf);
	return $node;
}

# CREATE EXTENSION in 'postgres' and wait for the worker.
sub create_extension
{
	my ($node) = @_;
	$node->safe_psql('postgres', 'CREATE EXTENSION cocohooks');
	wait_worker($node, 30);
	return;
}

# Runs $sql with psql -c; returns (exit code, output) and never dies.
# For polling a server that may be down or in crash recovery: the
# Cluster's psql() feeds the query on stdin, and when psql exits at a
# refused connection before reading it, IPC::Run dies of the broken pipe.
sub try_psql
{
	my ($node, $dbname, $sql) = @_;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run(
			[
				$node->installed_command('psql'), '-XAtq',
				'-d', $node->connstr($dbname), '-c', $sql
			],
			'<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout(60));
	};
	chomp $out;
	return ($ok ? 0 : 1, $out);
}

# Waits until the server accepts connections (after a crash); true if so.
sub wait_server
{
	my ($node, $timeout) = @_;
	return wait_until('the server to accept connections', $timeout // 60,
		sub { (try_psql($node, 'postgres', 'SELECT 1'))[0] == 0 });
}

# pid of the cocohooks worker of database postgres, or undef
sub worker_pid
{
	my ($node) = @_;
	my ($ret, $out) = try_psql($node, 'postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'cocohooks worker' AND datname = 'postgres'"
	);
	return undef if $ret != 0 || $out eq '';
	my @pids = split /\n/, $out;
	return $pids[0];
}

# Waits for a worker (other than $old_pid if given); returns its pid or undef.
sub wait_worker
{
	my ($node, $timeout, $old_pid) = @_;
	my $pid;
	wait_until(
		'cocohooks worker',
		$timeout // 30,
		sub {
			$pid = worker_pid($node);
			return defined $pid && (!defined $old_pid || $pid != $old_pid);
		});
	return (defined $pid && (!defined $old_pid || $pid != $old_pid))
	  ? $pid
	  : undef;
}

# Polls $cond every 100 ms for up to $timeout seconds; true if it held.
sub wait_until
{
	my ($what, $timeout, $cond) = @_;
	my $deadline = time() + $timeout;
	while (1)
	{
		return 1 if $cond->();
		if (time() >= $deadline)
		{
			diag("timed out after ${timeout}s waiting for $what");
			return 0;
		}
		usleep(100_000);
	}
}

# Starts test/receiver.py on 127.0.0.1, on a free port unless port => N;
# it records requests to a new file unless log => FILE (appended to).
# With tls_cert => PEM, tls_key => PEM it speaks HTTPS, and its url is
# https://localhost:PORT.  With fail_if => TEXT it answers 503 to every
# request whose body contains TEXT (restart_receiver starts it without).
# With fail_while => FILE it answers 503 to every request while FILE
# exists, and its records of those say "failed".
# With h2 => 1 it is test/h2_receiver.mjs instead (Node.js): over TLS it
# offers HTTP/2 and HTTP/1.1 (h1_only => 1: HTTP/1.1 alone), with
# cleartext => 1 it speaks HTTP/2 with prior knowledge on http://;
# delay_ms => N answers after N ms, max_streams => N announces that many
# concurrent streams per connection.
# With raw => 1 it is test/raw_receiver.mjs (Node.js, raw TCP): plain
# HTTP/1.1 whose answers, byte for byte, the path chooses (its header
# comment lists them), with each request's raw header lines, exact body
# bytes and connection recorded; with tls_cert and tls_key it speaks
# TLS (HTTP/1.1 alone by ALPN), the same answers on the TLS connection, and
# records failed handshakes too (lines with tls_error and no path).
sub start_receiver
{
	my (%opts) = @_;
	my $listen_port = $opts{port} // 0;
	my $dir = PostgreSQL::Test::Utils::tempdir('receiver');
	my $log = $opts{log} // "$dir/requests.jsonl";
	my $port_file = "$dir/port";
	my ($out, $err) = ('', '');
	my @tls = $opts{tls_cert} ? ('--tls-cert', $opts{tls_cert}, '--tls-key', $opts{tls_key}) : ();
	my @cmd = $opts{raw}
	  ? ('node', $raw_receiver_script, '--log', $log, '--port', $listen_port,
		'--port-file', $port_file, @tls)
	  : $opts{h2}
	  ? (
		'node', $h2_receiver_script, '--log', $log, '--port', $listen_port,
		'--port-file', $port_file, @tls,
		($opts{h1_only} ? ('--h1-only') : ()),
		($opts{cleartext} ? ('--cleartext') : ()),
		($opts{delay_ms} ? ('--delay-ms', $opts{delay_ms}) : ()),
		($opts{max_streams} ? ('--max-streams', $opts{max_streams}) : ()))
	  : (
		'python3', $receiver_script, '--log', $log, '--port', $listen_port,
		'--port-file', $port_file, @tls,
		(defined $opts{fail_if} ? ('--fail-if', $opts{fail_if}) : ()),
		(defined $opts{fail_while} ? ('--fail-while', $opts{fail_while}) : ()));
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err);
	my $ok = wait_until('receiver port file', 15, sub { -s $port_file });
	die "receiver did not start: $err" unless $ok;
	my $port = PostgreSQL::Test::Utils::slurp_file($port_file);
	chomp $port;
	my $recv = {
		handle => $h,
		log => $log,
		port => $port,
		url => $opts{tls_cert} ? "https://localhost:$port" : "http://127.0.0.1:$port",
		err => \$err,
		opts => \%opts,
	};
	push @receivers, $recv;
	return $recv;
}

sub stop_receiver
{
	my ($recv) = @_;
	return unless $recv->{handle};
	eval { $recv->{handle}->kill_kill(grace => 2); };
	$recv->{handle} = undef;
	return;
}

# Stops $recv if it runs and starts a new receiver on the same port that
# appends to the same log, so records() sees the requests of both; $recv
# then stands for the new one.  For a receiver that is down for a while:
#   stop_receiver($recv); ...; restart_receiver($recv);
sub restart_receiver
{
	my ($recv) = @_;
	stop_receiver($recv);
	my %same = map { $_ => $recv->{opts}{$_} }
	  grep { $_ ne 'fail_if' && $_ ne 'fail_while' } keys %{ $recv->{opts} // {} };
	my $new = start_receiver(%same, port => $recv->{port}, log => $recv->{log});
	@receivers = grep { $_ != $new } @receivers;
	$recv->{$_} = $new->{$_} for qw(handle err);
	return $recv;
}

END
{
	local $?;
	stop_receiver($_) for @receivers;
}

# Every request the receiver recorded so far, oldest first; with $filter
# (a sub taking a record) only those it accepts.
sub records
{
	my ($recv, $filter) = @_;
	my @recs;
	open my $fh, '<', $recv->{log} or return [];
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/;    # a line still being written
		my $r = decode_json($line);
		push @recs, $r if !$filter || $filter->($r);
	}
	close $fh;
	return \@recs;
}

# The decoded JSON body of a record.
sub body_of
{
	my ($rec) = @_;
	return decode_json($rec->{body});
}

# The records grouped by their webhook-id header: { id => [records] }.
sub by_webhook_id
{
	my ($recs) = @_;
	my %by;
	push @{ $by{ $_->{headers}{'webhook-id'} // '' } }, $_ for @$recs;
	return \%by;
}

# Waits until at least $n records pass $filter; returns them.
sub wait_records
{
	my ($recv, $n, $timeout, $filter) = @_;
	my $recs = [];
	wait_until(
		"$n receiver records",
		$timeout,
		sub {
			$recs = records($recv, $filter);
			return @$recs >= $n;
		});
	return $recs;
}

# cocohooks.wait_for_deliveries() in a new session: true/false.
sub wait_deliveries
{
	my ($node, $timeout) = @_;
	$timeout //= '30 s';
	my $r = $node->safe_psql('postgres',
		"SELECT cocohooks.wait_for_deliveries('$timeout')");
	return $r eq 't';
}

# cocohooks.stats as a hash
sub stats
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres',
		'SELECT queued, delivered, failed, retried, dropped, in_flight, '
		  . 'queue_bytes_used, queue_bytes_total FROM cocohooks.stats');
	my @v = split /\|/, $out;
	my %s;
	@s{qw(queued delivered failed retried dropped in_flight queue_bytes_used queue_bytes_total)} = @v;
	return \%s;
}

# SQL run in an API-tagged session
sub api_sql
{
	my ($node, $sql, %params) = @_;
	return $node->safe_psql('postgres',
		"SET cocohooks.api_session = on;\n$sql", %params);
}

# A field in kB of /proc/PID/status (VmHWM, RssAnon, ...), or undef.
sub proc_status_kb
{
	my ($pid, $field) = @_;
	open my $fh, '<', "/proc/$pid/status" or return undef;
	while (<$fh>)
	{
		return $1 if /^\Q$field\E:\s+(\d+)\s+kB/;
	}
	return undef;
}

# Starts test/verifier/receiver.mjs, which checks every request's signature
# with the Standard Webhooks library, once per secret given; returns
# { url, log }.  Killed at the end of the test.
my @verifiers;
sub start_verifier
{
	my (@secrets) = @_;
	my $verifier_dir = File::Spec->rel2abs(dirname(__FILE__) . '/../verifier');
	die "$verifier_dir/node_modules/standardwebhooks is missing: run test/deps\n"
	  unless -d "$verifier_dir/node_modules/standardwebhooks";
	my $dir = PostgreSQL::Test::Utils::tempdir('verifier');
	my $port_file = "$dir/port";
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'node', "$verifier_dir/receiver.mjs", (map { ('--secret', $_) } @secrets),
			'--log', "$dir/requests.jsonl", '--port-file', $port_file
		],
		'<', \undef, '>', \$out, '2>', \$err);
	push @verifiers, $h;
	wait_until('verifier port file', 15, sub { eval { $h->pump_nb }; -s $port_file })
	  or die "verifier receiver did not start: $err";
	my $port = PostgreSQL::Test::Utils::slurp_file($port_file);
	chomp $port;
	return { url => "http://127.0.0.1:$port", log => "$dir/requests.jsonl", dir => $verifier_dir };
}

END
{
	local $?;
	eval { $_->kill_kill(grace => 2) } for @verifiers;
}

# How many logical messages with exactly this prefix the node's WAL holds
# from the position $from on (pg_waldump, to the end of valid WAL).
sub wal_messages
{
	my ($node, $prefix, $from) = @_;
	my $dir = $node->data_dir . '/pg_wal';
	# it stops with an error at the end of valid WAL: only its output counts
	my $out = `pg_waldump --rmgr=LogicalMessage --path=$dir --start=$from 2>/dev/null`;
	my $n = () = $out =~ /prefix "\Q$prefix\E"/g;
	return $n;
}

# Test certificates, made with openssl in $dir: a CA ($dir/$name.pem and
# .key), and a server certificate for subjectAltName $san signed by CA $ca
# ($dir/$name.pem and .key).  Both readable by the server's user.
sub run_openssl
{
	my @args = @_;
	my ($out, $err);
	IPC::Run::run([ 'openssl', @args ], '<', \undef, '>', \$out, '2>', \$err)
	  or die "openssl @args: $err";
	return;
}

sub make_test_ca
{
	my ($dir, $name) = @_;
	run_openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
		'-days', '2', '-subj', "/CN=cocohooks test $name",
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.pem",
		'-addext', 'basicConstraints=critical,CA:TRUE',
		'-addext', 'keyUsage=critical,keyCertSign,cRLSign');
	chmod 0644, "$dir/$name.pem", "$dir/$name.key";
	return;
}

sub make_test_cert
{
	my ($dir, $name, $ca, $san) = @_;
	run_openssl('req', '-newkey', 'rsa:2048', '-nodes', '-sha256',
		'-subj', "/CN=$name", '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
	PostgreSQL::Test::Utils::append_to_file("$dir/$name.ext",
		"subjectAltName=$san\nextendedKeyUsage=serverAuth\n");
	run_openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.pem",
		'-CAkey', "$dir/$ca.key", '-CAcreateserial', '-days', '2', '-sha256',
		'-extfile', "$dir/$name.ext", '-out', "$dir/$name.pem");
	chmod 0644, "$dir/$name.pem", "$dir/$name.key";
	return;
}

1;
