-- cocohooks.traceparent and cocohooks.tracestate (W3C Trace Context): a
-- valid value is taken as it is, an invalid one is refused with a DETAIL
-- saying what is wrong, and the value in force stays.  What events carry
-- and send is tested in test/t/360_trace_context.pl.
\set VERBOSITY default

SHOW cocohooks.traceparent;
SHOW cocohooks.tracestate;

SET cocohooks.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
SHOW cocohooks.traceparent;

-- the form
SET cocohooks.traceparent = 'xyz';
SET cocohooks.traceparent = '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01';
SET cocohooks.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01';
SET cocohooks.traceparent = '00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
SET cocohooks.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g';
-- the values the specification rules out
SET cocohooks.traceparent = 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
SET cocohooks.traceparent = '00-00000000000000000000000000000000-00f067aa0ba902b7-01';
SET cocohooks.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01';
SET cocohooks.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-';
-- a later version: in the form of 00 only
SET cocohooks.traceparent = 'cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds';
-- none of these changed it
SHOW cocohooks.traceparent;
SET cocohooks.traceparent = 'cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09';
SHOW cocohooks.traceparent;

-- SET LOCAL: the transaction only
RESET cocohooks.traceparent;
BEGIN;
SET LOCAL cocohooks.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
SHOW cocohooks.traceparent;
COMMIT;
SHOW cocohooks.traceparent;

-- tracestate
SET cocohooks.tracestate = 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE';
SHOW cocohooks.tracestate;
-- spaces and tabs around members, empty members, every kind of key
SELECT set_config('cocohooks.tracestate',
                  E' rojo=00f067aa0ba902b7 ,, tenant1@vendor=a b,x/y*z_-1=!"#\t', false);
SET cocohooks.tracestate = 'rojo=1, 1tenant@sys=2,a@b=3';
SHOW cocohooks.tracestate;
SET cocohooks.tracestate = 'Rojo=1';
SET cocohooks.tracestate = 'rojo';
SET cocohooks.tracestate = 'rojo=';
SET cocohooks.tracestate = 'rojo=a=b';
SET cocohooks.tracestate = 'rojo=1,congo=2,rojo=3';
SET cocohooks.tracestate = 'a@toolongsystemid1=1';
SHOW cocohooks.tracestate;
-- 33 members, and 513 characters (their DETAIL only: the values are long)
DO $$
DECLARE
  detail text;
BEGIN
  BEGIN
    PERFORM set_config('cocohooks.tracestate',
                       string_agg('k' || g || '=v', ',' ORDER BY g), false)
      FROM generate_series(1, 33) g;
  EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'refused: %', detail;
  END;
  BEGIN
    PERFORM set_config('cocohooks.tracestate',
                       'k=' || repeat('v', 256) || ',l=' || repeat('w', 252), false);
  EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'refused: %', detail;
  END;
END
$$;
SELECT set_config('cocohooks.tracestate',
                  string_agg('k' || g || '=v', ',' ORDER BY g), false) IS NOT NULL AS "32 members"
  FROM generate_series(1, 32) g;
SELECT length(set_config('cocohooks.tracestate', 'k=' || repeat('v', 256) || ',l=' || repeat('w', 251), false));
RESET cocohooks.tracestate;
RESET cocohooks.traceparent;
