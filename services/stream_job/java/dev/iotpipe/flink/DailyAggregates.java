package dev.iotpipe.flink;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.TimeDomain;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The stream job's day operator (stream_job.job wires it): keyed by bucket (a few sites each), it runs DayLogic on
 * every item of its input rows and emits (topic, k, v) rows: aggregates and late readings.
 *
 * <p>Input rows: (bucket, batch, rt), batch = items "site,sensor,ts,value,seq,clock,partition,sseq" joined by ';'
 * (one event-time window of one bucket, or a single out-of-order reading, or a marker "site,,reason,,,clock,partition,
 * sseq" for a dead letter). State: one SiteState per site (MapState keyed by site), and the bucket's idle tick. A
 * processing-time timer per bucket, every idle limit, closes the days the sites' own clocks have passed and forgets
 * the sites idle beyond the site idle limit.
 */
public final class DailyAggregates extends KeyedProcessFunction<String, Row, Row> {
    private static final long serialVersionUID = 1L;
    /** How often a bucket looks for idle sites when the idle limit is off. */
    static final long TICK_MS = 60_000;
    static final String[] COUNTERS = {"late", "overflow", "days_closed", "days_dropped", "revisions"};

    private final String sensors;
    private final String parts;
    private final String zones;
    private final long latenessMs;
    private final long idleMs;
    private final long siteIdleMs;

    private transient DayLogic logic;
    private transient MapState<String, SiteState> sites;
    private transient ValueState<Long> tick;
    private transient Map<String, Counter> counters;
    private transient Map<String, Counter> deadLetters;
    private transient MetricGroup group;
    private transient Map<String, Long> clocks;
    private transient Map<String, SiteState> used;
    private transient List<DayLogic.Out> out;

    public DailyAggregates(String sensors, String parts, String zones, long latenessMs, long idleMs,
                           long siteIdleMs) {
        this.sensors = sensors;
        this.parts = parts;
        this.zones = zones;
        this.latenessMs = latenessMs;
        this.idleMs = idleMs;
        this.siteIdleMs = siteIdleMs;
    }

    /** The output rows' type: (topic STRING, k STRING, v BYTES). */
    public static TypeInformation<Row> outputType() {
        return Types.ROW_NAMED(new String[] {"topic", "k", "v"}, Types.STRING, Types.STRING,
                PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);
    }

    /** The bucket (field 0) of an input row. */
    public static final class BucketKey implements KeySelector<Row, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(Row row) {
            return (String) row.getField(0);
        }
    }

    /** The operator on `input` (rows of bucket, batch, rt), named daily-aggregates. Called from Python (py4j). */
    public static DataStream<Row> apply(DataStream<Row> input, String sensors, String parts, String zones,
                                        long latenessMs, long idleMs, long siteIdleMs) {
        return input.keyBy(new BucketKey(), Types.STRING)
                .process(new DailyAggregates(sensors, parts, zones, latenessMs, idleMs, siteIdleMs), outputType())
                .name("daily-aggregates")
                .uid("daily-aggregates");
    }

    @Override
    public void open(OpenContext context) {
        logic = new DayLogic(new DaySpec(sensors, parts, zones), latenessMs, Instant::now);
        sites = getRuntimeContext().getMapState(
                new MapStateDescriptor<>("sites", StringSerializer.INSTANCE, new SiteStateSerializer()));
        tick = getRuntimeContext().getState(new ValueStateDescriptor<>("tick", LongSerializer.INSTANCE));
        group = getRuntimeContext().getMetricGroup().addGroup("iotpipe");
        counters = new HashMap<>();
        for (String name : COUNTERS) {
            counters.put(name, group.counter(name));
        }
        deadLetters = new HashMap<>();
        clocks = new HashMap<>();
        group.gauge("clock_lag_ms", (Gauge<Long>) this::clockLag);
        used = new HashMap<>();
        out = new ArrayList<>();
    }

    /** How far the most-behind site seen here is behind the most advanced one (ms). */
    private long clockLag() {
        Map<String, Long> current = clocks;
        if (current == null || current.isEmpty()) {
            return 0L;
        }
        long min = Long.MAX_VALUE;
        long max = Long.MIN_VALUE;
        for (long c : current.values()) {
            min = Math.min(min, c);
            max = Math.max(max, c);
        }
        return max - min;
    }

    private SiteState site(String site) throws Exception {
        SiteState st = used.get(site);
        if (st == null) {
            st = sites.get(site);
            if (st == null) {
                st = new SiteState();
            }
            used.put(site, st);
        }
        return st;
    }

    /** Writes back the sites touched in this call (the heap backend may have handed out a copy). */
    private void flush() throws Exception {
        for (Map.Entry<String, SiteState> e : used.entrySet()) {
            sites.put(e.getKey(), e.getValue());
        }
        used.clear();
    }

    private void emit(Collector<Row> collector) {
        for (DayLogic.Out o : out) {
            collector.collect(Row.of(o.topic(), o.key(), o.value()));
        }
        out.clear();
        count();
    }

    private void count() {
        add("late", logic.late);
        add("overflow", logic.overflow);
        add("days_closed", logic.daysClosed);
        add("days_dropped", logic.daysDropped);
        add("revisions", logic.revisions);
        logic.late = logic.overflow = logic.daysClosed = logic.daysDropped = logic.revisions = 0;
    }

    private void add(String counter, long n) {
        if (n != 0) {
            counters.get(counter).inc(n);
        }
    }

    @Override
    public void processElement(Row row, Context ctx, Collector<Row> collector) throws Exception {
        long watermark = ctx.timerService().currentWatermark();
        long now = ctx.timerService().currentProcessingTime();
        TreeSet<Long> register = new TreeSet<>();
        for (String item : ((String) row.getField(1)).split(";")) {
            String[] f = item.split(",", -1);
            String site = f[0];
            String sensor = f[1];
            if (sensor.isEmpty()) {  // a marker (f[2]: the dead letter's reason; empty for another site's reading)
                if (!f[2].isEmpty()) {
                    deadLetter(f[2]);
                }
                if (site.isEmpty() || f[7].isEmpty()) {
                    continue;
                }
            }
            SiteState st = site(site);
            st.lastSeen = now;
            long clockMs = Times.epochMs(f[5]);
            if (clockMs > clocks.getOrDefault(site, 0L)) {  // 0: no plausible canonical reading yet, no clock
                clocks.put(site, clockMs);
            }
            int part = Integer.parseInt(f[6]);
            long sseq = f[7].isEmpty() ? -1 : Long.parseLong(f[7]);
            if (sensor.isEmpty()) {
                logic.onMarker(st, site, clockMs, sseq, watermark, part, out);
            } else {
                long timer = logic.onReading(st, site, sensor, f[2], Times.epochMs(f[2]), Double.parseDouble(f[3]),
                        Long.parseLong(f[4]), clockMs, sseq, watermark, part, out);
                if (timer != Long.MIN_VALUE) {
                    register.add(timer);
                }
            }
        }
        flush();
        emit(collector);
        for (long timer : register) {
            ctx.timerService().registerEventTimeTimer(timer);
        }
        if (tick.value() == null) {
            tick.update(now + tickMs());
            ctx.timerService().registerProcessingTimeTimer(now + tickMs());
        }
    }

    private void deadLetter(String reason) {
        deadLetters.computeIfAbsent(reason, r -> group.addGroup("reason", r).counter("dead_letters")).inc();
    }

    private long tickMs() {
        return idleMs > 0 ? idleMs : TICK_MS;
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> collector) throws Exception {
        TreeSet<String> names = new TreeSet<>();
        for (String site : sites.keys()) {
            names.add(site);
        }
        if (ctx.timeDomain() == TimeDomain.EVENT_TIME) {
            for (String site : names) {
                logic.onTimer(site(site), site, timestamp, out);
            }
            flush();
            emit(collector);
            return;
        }
        // processing time: the idle limits
        long now = ctx.timerService().currentProcessingTime();
        int kept = 0;
        for (String site : names) {
            SiteState st = site(site);
            if (now - st.lastSeen > siteIdleMs) {  // idle beyond the limit: forget the site entirely
                used.remove(site);
                sites.remove(site);
                clocks.remove(site);
                continue;
            }
            kept++;
            if (idleMs > 0) {
                logic.onIdle(st, site, out);
            }
        }
        flush();
        emit(collector);
        if (kept > 0) {
            tick.update(now + tickMs());
            ctx.timerService().registerProcessingTimeTimer(now + tickMs());
        } else {
            tick.clear();
        }
    }
}
