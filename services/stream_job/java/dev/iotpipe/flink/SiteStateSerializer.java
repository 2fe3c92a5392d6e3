package dev.iotpipe.flink;

import dev.iotpipe.flink.SiteState.Acc;
import dev.iotpipe.flink.SiteState.Day;
import dev.iotpipe.flink.SiteState.Emitted;
import dev.iotpipe.flink.SiteState.Seen;
import dev.iotpipe.flink.SiteState.Sub;
import java.io.IOException;
import java.util.Map;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;

/**
 * SiteState in checkpoints: an explicit, versioned binary layout (no Kryo, no reflection). Version 1:
 *
 * <pre>
 * int version; long hi; long lastSeen; bool hasEod [utf eodDay; int n; n x (utf sensor, acc)];
 * int subs; subs x (int partition, long upto, long safe, int pend, pend x (long sseq, long clock));
 * int days; days x (utf day, long endMs, bool closed, int accs, accs x (utf sensor, acc),
 *                   int seen, seen x (utf sensor, int small, small x long, int large, large x utf),
 *                   int emitted, emitted x (utf name, long revision, double value, long count))
 * acc = char kind, double sum, double comp, long lastTs, long lastSeq, double lastValue, long count
 * </pre>
 */
public final class SiteStateSerializer extends TypeSerializer<SiteState> {
    private static final long serialVersionUID = 1L;
    private static final int VERSION = 1;

    @Override
    public boolean isImmutableType() {
        return false;
    }

    @Override
    public TypeSerializer<SiteState> duplicate() {
        return this;  // stateless
    }

    @Override
    public SiteState createInstance() {
        return new SiteState();
    }

    @Override
    public SiteState copy(SiteState from) {
        try {  // a deep copy (the heap backend copies a value that a running snapshot still holds)
            DataOutputSerializer out = new DataOutputSerializer(1024);
            serialize(from, out);
            return deserialize(new DataInputDeserializer(out.getSharedBuffer(), 0, out.length()));
        } catch (IOException e) {
            throw new IllegalStateException("copying a site's state", e);
        }
    }

    @Override
    public SiteState copy(SiteState from, SiteState reuse) {
        return copy(from);
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(SiteState st, DataOutputView out) throws IOException {
        out.writeInt(VERSION);
        out.writeLong(st.hi);
        out.writeLong(st.lastSeen);
        out.writeBoolean(st.eodDay != null);
        if (st.eodDay != null) {
            out.writeUTF(st.eodDay);
            writeAccs(st.eod, out);
        }
        out.writeInt(st.subs.size());
        for (Map.Entry<Integer, Sub> e : st.subs.entrySet()) {
            Sub sub = e.getValue();
            out.writeInt(e.getKey());
            out.writeLong(sub.upto);
            out.writeLong(sub.safe);
            out.writeInt(sub.pend.size());
            for (Map.Entry<Long, Long> p : sub.pend.entrySet()) {
                out.writeLong(p.getKey());
                out.writeLong(p.getValue());
            }
        }
        out.writeInt(st.days.size());
        for (Map.Entry<String, Day> e : st.days.entrySet()) {
            Day d = e.getValue();
            out.writeUTF(e.getKey());
            out.writeLong(d.endMs);
            out.writeBoolean(d.closed);
            writeAccs(d.acc, out);
            out.writeInt(d.seen.size());
            for (Map.Entry<String, Seen> s : d.seen.entrySet()) {
                out.writeUTF(s.getKey());
                out.writeInt(s.getValue().small.size());
                for (long id : s.getValue().small) {
                    out.writeLong(id);
                }
                out.writeInt(s.getValue().large.size());
                for (String id : s.getValue().large) {
                    out.writeUTF(id);
                }
            }
            out.writeInt(d.emitted.size());
            for (Map.Entry<String, Emitted> m : d.emitted.entrySet()) {
                out.writeUTF(m.getKey());
                out.writeLong(m.getValue().revision());
                out.writeDouble(m.getValue().value());
                out.writeLong(m.getValue().count());
            }
        }
    }

    private static void writeAccs(Map<String, Acc> accs, DataOutputView out) throws IOException {
        out.writeInt(accs.size());
        for (Map.Entry<String, Acc> e : accs.entrySet()) {
            Acc a = e.getValue();
            out.writeUTF(e.getKey());
            out.writeChar(a.kind());
            out.writeDouble(a.sum());
            out.writeDouble(a.comp());
            out.writeLong(a.lastTs());
            out.writeLong(a.lastSeq());
            out.writeDouble(a.lastValue());
            out.writeLong(a.count());
        }
    }

    private static void readAccs(Map<String, Acc> accs, DataInputView in) throws IOException {
        int n = in.readInt();
        for (int i = 0; i < n; i++) {
            String sensor = in.readUTF();
            accs.put(sensor, new Acc(in.readChar(), in.readDouble(), in.readDouble(), in.readLong(), in.readLong(),
                    in.readDouble(), in.readLong()));
        }
    }

    @Override
    public SiteState deserialize(DataInputView in) throws IOException {
        int version = in.readInt();
        if (version != VERSION) {
            throw new IOException("site state version " + version + " is not " + VERSION);
        }
        SiteState st = new SiteState();
        st.hi = in.readLong();
        st.lastSeen = in.readLong();
        if (in.readBoolean()) {
            st.eodDay = in.readUTF();
            readAccs(st.eod, in);
        }
        int subs = in.readInt();
        for (int i = 0; i < subs; i++) {
            Sub sub = new Sub();
            st.subs.put(in.readInt(), sub);
            sub.upto = in.readLong();
            sub.safe = in.readLong();
            int pend = in.readInt();
            for (int j = 0; j < pend; j++) {
                sub.pend.put(in.readLong(), in.readLong());
            }
        }
        int days = in.readInt();
        for (int i = 0; i < days; i++) {
            Day d = new Day();
            st.days.put(in.readUTF(), d);
            d.endMs = in.readLong();
            d.closed = in.readBoolean();
            readAccs(d.acc, in);
            int seen = in.readInt();
            for (int j = 0; j < seen; j++) {
                Seen s = new Seen();
                d.seen.put(in.readUTF(), s);
                int small = in.readInt();
                for (int k = 0; k < small; k++) {
                    s.small.add(in.readLong());
                }
                int large = in.readInt();
                for (int k = 0; k < large; k++) {
                    s.large.add(in.readUTF());
                }
            }
            int emitted = in.readInt();
            for (int j = 0; j < emitted; j++) {
                d.emitted.put(in.readUTF(), new Emitted(in.readLong(), in.readDouble(), in.readLong()));
            }
        }
        return st;
    }

    @Override
    public SiteState deserialize(SiteState reuse, DataInputView in) throws IOException {
        return deserialize(in);
    }

    @Override
    public void copy(DataInputView in, DataOutputView out) throws IOException {
        serialize(deserialize(in), out);
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof SiteStateSerializer;
    }

    @Override
    public int hashCode() {
        return SiteStateSerializer.class.hashCode();
    }

    @Override
    public TypeSerializerSnapshot<SiteState> snapshotConfiguration() {
        return new Snapshot();
    }

    /** Restores the serializer from a checkpoint (the layout's version is in each value). */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<SiteState> {
        public Snapshot() {
            super(SiteStateSerializer::new);
        }
    }
}
