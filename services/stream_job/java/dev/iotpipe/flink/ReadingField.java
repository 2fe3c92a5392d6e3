package dev.iotpipe.flink;

import org.apache.flink.table.functions.ScalarFunction;

/** SQL: reading_field(v BYTES, grammar STRING, units STRING, limits STRING, name STRING) -> STRING: the text of one field (site,
 * sensor, ts, value, seq; also head = "site,sensor,ts,value,seq" and bucket = the first hex digit of md5(site)) of a
 * canonical reading, or NULL when the message is not a canonical reading. Called once per
 * field: the parse is memoised per thread, so the further calls cost a comparison. (Scalars rather than one ROW: the
 * planner's Python calc split fails on field access to a ROW-typed call.) */
public class ReadingField extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    public String eval(byte[] value, String grammar, String units, String limits, String name) {
        CanonicalReading r = CanonicalReading.parse(value, grammar, units, limits);
        if (r == null) {
            return null;
        }
        switch (name) {
            case "site": return r.site;
            case "sensor": return r.sensor;
            case "ts": return r.ts;
            case "value": return r.value;
            case "seq": return r.seq;
            case "head": return r.head;
            case "bucket": return r.bucket;
            default: throw new IllegalArgumentException("reading_field: no field " + name);
        }
    }
}
