-- A hypertable on `time` with 1-day chunks when the timescaledb extension is
-- available (a plain table otherwise). Any failure here (e.g. the library is not in
-- shared_preload_libraries) leaves the plain table and is reported as a notice.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
            PERFORM create_hypertable(
                'telemetry', 'time',
                chunk_time_interval => INTERVAL '1 day',
                if_not_exists => TRUE,
                migrate_data => TRUE
            );
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'timescaledb not used: %', SQLERRM;
        END;
    END IF;
END
$$;
