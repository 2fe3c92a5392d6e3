package dev.iotpipe.flink;

import dev.iotpipe.flink.SiteState.Acc;
import dev.iotpipe.flink.SiteState.Day;
import dev.iotpipe.flink.SiteState.Emitted;
import dev.iotpipe.flink.SiteState.Seen;
import dev.iotpipe.flink.SiteState.Sub;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The daily aggregation of the stream job: dedup, day state, first emission at a day's end, revisions, late readings,
 * dropping days that can get no more readings. No Flink, no I/O: it works on a site's SiteState.
 *
 * <p>A port of the Python reference core (services/stream_job/stream_job/core.py, whose docstring has the rules, and
 * docs/stream-job.md the reasoning); the unit tests run the same scenarios against both. The catalogue (sensors,
 * units, rules, the parts of each cumulative total) and the site zones come from Python as text (DaySpec).
 */
final class DayLogic {
    static final String LATE_REASON = "beyond-allowed-lateness";
    static final String OVERFLOW_REASON = "aggregate-overflow";
    /** A reading's ms within its day (start, end] fit in this many bits: a local day lasts at most 25 h. */
    static final int DAY_MS_BITS = 27;

    /** One message to emit: topic "aggregates" or "late", the Kafka key and value. */
    record Out(String topic, String key, byte[] value) {
    }

    private final DaySpec spec;
    private final long latenessMs;
    private final Supplier<Instant> clock;
    private final Map<String, DayIndex> indexes = new HashMap<>();

    // what happened since the caller last looked (the operator adds these to its metrics and zeroes them)
    long late;
    long overflow;
    long daysClosed;
    long daysDropped;
    long revisions;

    DayLogic(DaySpec spec, long latenessMs, Supplier<Instant> clock) {
        this.spec = spec;
        this.latenessMs = latenessMs;
        this.clock = clock;
    }

    /** The day boundaries in a zone, cached: a reading's day is then two comparisons. */
    static final class DayIndex {
        final ZoneId zone;
        private String lastDay;
        private long lastStart;
        private long lastEnd;
        private final Map<String, long[]> byDay = new HashMap<>();

        DayIndex(ZoneId zone) {
            this.zone = zone;
        }

        /** (start, end] of a day in epoch ms. */
        long[] window(String day) {
            long[] found = byDay.get(day);
            if (found == null) {
                LocalDate d = LocalDate.parse(day);
                found = new long[] {d.atStartOfDay(zone).toInstant().toEpochMilli(),
                    d.plusDays(1).atStartOfDay(zone).toInstant().toEpochMilli()};
                if (byDay.size() > 4096) {
                    byDay.clear();
                }
                byDay.put(day, found);
            }
            return found;
        }

        /** The day of an event time: the day whose (start, end] holds it. */
        String dayOf(long tsMs) {
            if (lastDay != null && lastStart < tsMs && tsMs <= lastEnd) {
                return lastDay;
            }
            String day = Instant.ofEpochMilli(tsMs - 1).atZone(zone).toLocalDate().toString();
            long[] w = window(day);
            lastDay = day;
            lastStart = w[0];
            lastEnd = w[1];
            return day;
        }
    }

    DayIndex days(String site) {
        String name = spec.zoneName(site);
        return indexes.computeIfAbsent(name, n -> new DayIndex(ZoneId.of(n)));
    }

    // -- readings ----------------------------------------------------------------------------------------------

    /**
     * Applies one valid reading (part: the Kafka partition it came from; sseq its number in the site's substream
     * there, or -1 when it has none) to the site's state; adds the messages to emit to `out` and returns the
     * event-time timer to register (Long.MIN_VALUE: none).
     */
    long onReading(SiteState st, String site, String sensor, String ts, long tsMs, double value, long seq,
                   long clockMs, long sseq, long watermark, int part, List<Out> out) {
        DayIndex index = days(site);
        String day = index.dayOf(tsMs);
        long[] win = index.window(day);
        long limit = win[1] + latenessMs;
        if (clockMs >= limit) {
            late++;
            out.add(late(site, sensor, ts, value, seq, day, LATE_REASON, clockMs - limit));
            track(st, site, clockMs, sseq, part, watermark, out);
            return Long.MIN_VALUE;
        }
        long timer = Long.MIN_VALUE;
        Day d = st.days.get(day);
        boolean isNew = d == null;
        if (isNew) {  // a new day
            d = new Day();
            d.endMs = win[1];
            d.closed = watermark >= win[1];
            if (d.closed) {
                daysClosed++;
            }
            timer = win[1];
        }
        DaySpec.Sensor s = spec.sensor(sensor);
        long offset = tsMs - win[0];
        Seen seen = d.seen.get(sensor);
        if (seen == null || !seen.contains(seq, offset)) {  // a duplicate counts once
            Acc acc = add(d.acc.get(sensor), s.rule(), tsMs, seq, value);
            if (!acc.finite()) {  // the day's sum would overflow: the reading is kept out of it, and said so
                overflow++;
                out.add(late(site, sensor, ts, value, seq, day, OVERFLOW_REASON, 0));
            } else {
                if (seen == null) {
                    seen = new Seen();
                    d.seen.put(sensor, seen);
                }
                seen.add(seq, offset);
                d.acc.put(sensor, acc);
                if (isNew) {
                    st.days.put(day, d);
                }
                if (d.closed) {
                    emitChanges(st, site, day, out);
                    String following = LocalDate.parse(day).plusDays(1).toString();
                    Day next = st.days.get(following);
                    if (s.rule() == DaySpec.Rule.CUMULATIVE && next != null && next.closed) {
                        emitChanges(st, site, following, out);
                    }
                }
            }
        }
        if (isNew && d.acc.isEmpty()) {  // nothing was added to the new day
            timer = Long.MIN_VALUE;
        }
        track(st, site, clockMs, sseq, part, watermark, out);
        return timer;
    }

    /** A message of the site's sequence that is not a reading (a dead letter): it only advances the sequence. */
    void onMarker(SiteState st, String site, long clockMs, long sseq, long watermark, int part, List<Out> out) {
        track(st, site, clockMs, sseq, part, watermark, out);
    }

    static Acc add(Acc acc, DaySpec.Rule rule, long tsMs, long seq, double value) {
        if (rule == DaySpec.Rule.CUMULATIVE) {
            if (acc == null) {
                return Acc.last(tsMs, seq, value, 1);
            }
            if (tsMs > acc.lastTs() || (tsMs == acc.lastTs() && seq > acc.lastSeq())) {
                return Acc.last(tsMs, seq, value, acc.count() + 1);
            }
            return Acc.last(acc.lastTs(), acc.lastSeq(), acc.lastValue(), acc.count() + 1);
        }
        if (rule == DaySpec.Rule.COUNT) {
            value = 1.0;
        }
        if (acc == null) {
            return Acc.sum(value, 0.0, 1);
        }
        double total = acc.sum();
        double comp = acc.comp();
        double sum = total + value;  // Neumaier: the result does not depend on the order of the readings
        if (Math.abs(total) >= Math.abs(value)) {
            comp += (total - sum) + value;
        } else {
            comp += (value - sum) + total;
        }
        return Acc.sum(sum, comp, acc.count() + 1);
    }

    // -- the site's sequences: when is a day safe to drop? ----------------------------------------------------

    /**
     * Records that message `sseq` of the site's substream on partition `part` has arrived, and drops the days that
     * the contiguous prefixes (and the watermark) prove final (core.py, DayAggregator._track, says why).
     */
    private void track(SiteState st, String site, long clockMs, long sseq, int part, long watermark, List<Out> out) {
        if (clockMs > st.hi) {
            st.hi = clockMs;
        }
        if (sseq < 0) {
            return;
        }
        Sub sub = st.subs.get(part);
        if (sub == null) {
            sub = new Sub();
            st.subs.put(part, sub);
        } else if (sseq <= sub.upto) {  // the sequence started again upstream (its state expired): start over
            sub.upto = 0;
            sub.safe = 0;
            sub.pend.clear();
        }
        if (sub.pend.isEmpty() && sseq == sub.upto + 1) {
            sub.upto = sseq;
            if (clockMs > sub.safe) {
                sub.safe = clockMs;
            }
        } else {
            sub.pend.put(sseq, clockMs);
            Long next;
            while ((next = sub.pend.remove(sub.upto + 1)) != null) {
                sub.upto++;
                sub.safe = Math.max(sub.safe, next);
            }
        }
        long floor = Long.MAX_VALUE;
        for (Sub each : st.subs.values()) {
            floor = Math.min(floor, each.safe);
        }
        if (watermark < floor) {
            floor = watermark;
        }
        // days are sorted, and so are their ends: the first one tells whether any can go (no subtraction: the
        // watermark starts at Long.MIN_VALUE)
        if (st.days.isEmpty() || st.days.firstEntry().getValue().endMs + latenessMs > floor) {
            return;
        }
        expire(st, site, floor, out);
    }

    private void expire(SiteState st, String site, long safe, List<Out> out) {
        List<String> expired = new ArrayList<>();
        for (Map.Entry<String, Day> e : st.days.entrySet()) {
            if (e.getValue().endMs + latenessMs <= safe) {
                expired.add(e.getKey());
            }
        }
        if (expired.isEmpty()) {
            return;
        }
        for (String day : expired) {  // never dropped unannounced: a day not yet emitted is emitted now
            Day d = st.days.get(day);
            if (!d.closed) {
                d.closed = true;
                daysClosed++;
                emitChanges(st, site, day, out);
            }
        }
        String newest = expired.get(expired.size() - 1);
        st.eodDay = newest;
        st.eod.clear();
        for (Map.Entry<String, Acc> e : st.days.get(newest).acc.entrySet()) {
            if (spec.sensor(e.getKey()).rule() == DaySpec.Rule.CUMULATIVE) {
                st.eod.put(e.getKey(), e.getValue());
            }
        }
        for (String day : expired) {
            st.days.remove(day);
        }
        daysDropped += expired.size();
    }

    // -- timers ------------------------------------------------------------------------------------------------

    /** Event time reached `timestamp`: first emission of the site's days that ended by then. */
    void onTimer(SiteState st, String site, long timestamp, List<Out> out) {
        close(st, site, timestamp, out);
    }

    /** The idle limit passed: first emission of the days the site's own clock has passed, whatever the watermark. */
    void onIdle(SiteState st, String site, List<Out> out) {
        close(st, site, st.hi, out);
    }

    private void close(SiteState st, String site, long until, List<Out> out) {
        for (Map.Entry<String, Day> e : st.days.entrySet()) {
            Day d = e.getValue();
            if (!d.closed && d.endMs <= until) {
                d.closed = true;
                daysClosed++;
                emitChanges(st, site, e.getKey(), out);
            }
        }
    }

    // -- emission ----------------------------------------------------------------------------------------------

    private void emitChanges(SiteState st, String site, String day, List<Out> out) {
        Day d = st.days.get(day);
        String prev = LocalDate.parse(day).minusDays(1).toString();
        Map<String, Acc> prevAccs;
        Day prevDay = st.days.get(prev);
        if (prevDay != null) {
            prevAccs = prevDay.acc;
        } else {
            prevAccs = prev.equals(st.eodDay) ? st.eod : Map.of();
        }
        long[] win = days(site).window(day);
        String emittedAt = null;
        for (Agg agg : dayAggregates(d.acc, prevAccs)) {
            if (!Double.isFinite(agg.value)) {  // e.g. a Diff of two meter values near the double range
                continue;
            }
            Emitted last = d.emitted.get(agg.name);
            if (last != null && last.value() == agg.value && last.count() == agg.count) {
                continue;
            }
            long revision = last == null ? 1 : last.revision() + 1;
            if (revision > 1) {
                revisions++;
            }
            d.emitted.put(agg.name, new Emitted(revision, agg.value, agg.count));
            if (emittedAt == null) {
                emittedAt = PyJson.isoZ(clock.get());
            }
            out.add(aggregate(site, agg, day, revision, win, emittedAt));
        }
    }

    private record Agg(String name, String kind, String sensor, double value, String unit, long count) {
    }

    /** Every aggregate of one day from its accumulators and the previous day's (for the cumulative sensors' Diff). */
    private List<Agg> dayAggregates(LinkedHashMap<String, Acc> accs, Map<String, Acc> prevAccs) {
        List<Agg> out = new ArrayList<>();
        Map<String, Acc> sums = new HashMap<>();
        for (Map.Entry<String, Acc> e : accs.entrySet()) {
            Acc acc = e.getValue();
            if (acc.kind() != 's') {
                continue;
            }
            String sensor = e.getKey();
            DaySpec.Sensor s = spec.sensor(sensor);
            double total = acc.sum() + acc.comp();
            long n = acc.count();
            sums.put(sensor, acc);
            switch (s.rule()) {
                case MEAN -> out.add(new Agg("AggDay[" + sensor + "]", "AggDay", sensor, total / n, s.unit(), n));
                case SUM -> out.add(new Agg("AggDay[" + sensor + "]", "AggDay", sensor, total, s.unit(), n));
                default -> out.add(new Agg("AggDayMov[" + sensor + "]", "AggDayMov", sensor, (double) n, "count", n));
            }
        }
        for (String total : spec.cumulative()) {
            Acc last = accs.get(total);
            Acc before = prevAccs.get(total);
            if (last == null || before == null) {
                continue;
            }
            String unit = spec.sensor(total).unit();
            double diff = last.lastValue() - before.lastValue();
            out.add(new Agg("AggDayDiff[" + total + "]", "AggDayDiff", total, diff, unit, 2));
            List<String> parts = spec.parts(total);
            double[] partSums = new double[parts.size()];
            int k = 0;
            long partN = 0;
            for (String part : parts) {
                Acc p = sums.get(part);
                if (p != null) {
                    partSums[k++] = p.sum() + p.comp();
                    partN += p.count();
                }
            }
            out.add(new Agg("AggDayRest[" + total + "]", "AggDayRest", total, diff - PyJson.fsum(partSums, k), unit,
                    2 + partN));
        }
        return out;
    }

    // -- messages (iotcommon.messages: Aggregate, LateReading; field order as their encode writes it) --------------

    private static Out aggregate(String site, Agg agg, String day, long revision, long[] win, String emittedAt) {
        StringBuilder b = new StringBuilder(320).append("{\"v\":1,\"site\":");
        PyJson.string(b, site);
        b.append(",\"name\":");
        PyJson.string(b, agg.name);
        b.append(",\"kind\":");
        PyJson.string(b, agg.kind);
        b.append(",\"sensor\":");
        PyJson.string(b, agg.sensor);
        b.append(",\"day\":\"").append(day).append("\",\"value\":").append(PyJson.repr(agg.value));
        b.append(",\"unit\":");
        PyJson.string(b, agg.unit);
        b.append(",\"count\":").append(agg.count).append(",\"revision\":").append(revision);
        b.append(",\"window_start\":\"").append(PyJson.isoZ(win[0])).append("\",\"window_end\":\"")
                .append(PyJson.isoZ(win[1])).append("\",\"emitted_at\":\"").append(emittedAt).append("\"}");
        return new Out("aggregates", site + "/" + agg.name + "/" + day, b.toString().getBytes(StandardCharsets.UTF_8));
    }

    private Out late(String site, String sensor, String ts, double value, long seq, String day, String reason,
                     long lateByMs) {
        StringBuilder b = new StringBuilder(256).append("{\"v\":1,\"reading\":{\"v\":1,\"site\":");
        PyJson.string(b, site);
        b.append(",\"sensor\":");
        PyJson.string(b, sensor);
        b.append(",\"ts\":");
        PyJson.string(b, ts);
        b.append(",\"value\":").append(PyJson.repr(value)).append(",\"unit\":");
        PyJson.string(b, spec.sensor(sensor).unit());
        b.append(",\"seq\":").append(seq).append("},\"reason\":");
        PyJson.string(b, reason);
        b.append(",\"day\":\"").append(day).append("\",\"late_by_ms\":").append(lateByMs).append('}');
        return new Out("late", site + "/" + sensor, b.toString().getBytes(StandardCharsets.UTF_8));
    }
}
