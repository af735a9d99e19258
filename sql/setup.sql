-- Installing the extension, and what it creates.
CREATE EXTENSION cocohooks;
SELECT current_setting('cocohooks.database') = current_database() AS serves_this_database;
\dx cocohooks
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       pg_get_function_result(p.oid) AS result
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'cocohooks' ORDER BY 1, 2;
