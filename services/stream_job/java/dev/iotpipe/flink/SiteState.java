package dev.iotpipe.flink;

import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Everything the day logic keeps about one site (one entry of the operator's keyed MapState, key = site). The same
 * content as the Python reference core's "I", "Q" and "D|day" entries (stream_job/core.py), as objects: the heap state
 * backend keeps them as they are, and SiteStateSerializer writes them only at checkpoints.
 */
final class SiteState {
    /** Open days by ISO date (sorted: closing and dropping go in day order). */
    final TreeMap<String, Day> days = new TreeMap<>();
    /** The newest dropped day and its cumulative sensors' accumulators (the next day's Diff needs them). */
    String eodDay;
    final LinkedHashMap<String, Acc> eod = new LinkedHashMap<>();
    /** The newest clock of the site's messages. */
    long hi;
    /** The site's substreams by Kafka partition: which of their messages have arrived. */
    final LinkedHashMap<Integer, Sub> subs = new LinkedHashMap<>();
    /** Processing time the site was last seen (the site idle limit forgets it after that). */
    long lastSeen;

    static final class Day {
        long endMs;
        boolean closed;
        /** Running accumulator per sensor, in the order the sensors first appeared in the day. */
        final LinkedHashMap<String, Acc> acc = new LinkedHashMap<>();
        /** Identities of the readings each sensor's accumulator holds (a duplicate counts once). */
        final HashMap<String, Seen> seen = new HashMap<>();
        /** The last emitted version of each aggregate. */
        final LinkedHashMap<String, Emitted> emitted = new LinkedHashMap<>();
    }

    /**
     * A sensor's accumulator: sum rules ('s': Neumaier sum, compensation, count) or the cumulative rule ('c': the
     * reading with the greatest (ts, seq), its value, count). Immutable: a new one per reading.
     */
    record Acc(char kind, double sum, double comp, long lastTs, long lastSeq, double lastValue, long count) {
        static Acc sum(double sum, double comp, long count) {
            return new Acc('s', sum, comp, 0, 0, 0.0, count);
        }

        static Acc last(long ts, long seq, double value, long count) {
            return new Acc('c', 0.0, 0.0, ts, seq, value, count);
        }

        boolean finite() {
            return kind == 's' ? Double.isFinite(sum) && Double.isFinite(comp) : Double.isFinite(lastValue);
        }
    }

    record Emitted(long revision, double value, long count) {
    }

    /**
     * Reading identities of one sensor's day: seq * 2^27 + ms since the day's start, as a long while seq < 2^36
     * (every real sequence), else as text.
     */
    static final class Seen {
        final HashSet<Long> small = new HashSet<>();
        final HashSet<String> large = new HashSet<>();

        /** Adds the identity; false when it was there already. */
        boolean add(long seq, long offsetMs) {
            if (seq >= 0 && seq < (1L << 36)) {
                return small.add((seq << DayLogic.DAY_MS_BITS) | offsetMs);
            }
            return large.add(seq + "/" + offsetMs);
        }

        boolean contains(long seq, long offsetMs) {
            if (seq >= 0 && seq < (1L << 36)) {
                return small.contains((seq << DayLogic.DAY_MS_BITS) | offsetMs);
            }
            return large.contains(seq + "/" + offsetMs);
        }
    }

    /** One substream: messages 1..upto have all arrived, safe is the clock at upto, pend the early ones. */
    static final class Sub {
        long upto;
        long safe;
        final Map<Long, Long> pend = new HashMap<>();
    }
}
