// Decodes koppel payloads with the Apache Avro Java implementation's single-object API:
// BinaryMessageDecoder finds each writer schema in a SchemaStore by the fingerprint Java
// computes itself (SchemaNormalization.parsingFingerprint64), never by koppel's bucket keys.
//
// Usage: java DecodeWithAvroJava DIR, where DIR holds schemas/*.avsc (the schemas bucket),
// reader.avsc (the union of every event record) and payloads/*.bin (raw stream messages).
// Prints the same tab-separated line per payload as decode_with_fastavro.py. Any payload it
// cannot decode ends it with an exception and a non-zero exit.

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;

public class DecodeWithAvroJava {
    private static List<Path> sorted(Path directory, String glob) throws Exception {
        List<Path> paths = new ArrayList<>();
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(directory, glob)) {
            for (Path path : stream) {
                paths.add(path);
            }
        }
        Collections.sort(paths);
        return paths;
    }

    private static String read(Path path) throws Exception {
        return new String(Files.readAllBytes(path), StandardCharsets.UTF_8);
    }

    private static String salaryOf(GenericRecord record) {
        if (record.getSchema().getField("employment") == null) {
            return "-";
        }
        GenericRecord employment = (GenericRecord) record.get("employment");
        GenericRecord salary = (GenericRecord) employment.get("salary");
        if (salary == null) {
            return "-";
        }
        GenericRecord money = (GenericRecord) salary.get("amount");
        ByteBuffer bytes = (ByteBuffer) money.get("amount");
        byte[] unscaled = new byte[bytes.remaining()];
        bytes.duplicate().get(unscaled);
        Schema amountSchema = money.getSchema().getField("amount").schema();
        int scale = ((Number) amountSchema.getObjectProp("scale")).intValue();
        return new BigDecimal(new BigInteger(unscaled), scale).toPlainString();
    }

    public static void main(String[] args) throws Exception {
        Path directory = Paths.get(args[0]);
        SchemaStore.Cache store = new SchemaStore.Cache();
        for (Path path : sorted(directory.resolve("schemas"), "*.avsc")) {
            store.addSchema(new Schema.Parser().parse(read(path)));
        }
        Schema reader = new Schema.Parser().parse(read(directory.resolve("reader.avsc")));
        BinaryMessageDecoder<Object> decoder =
            new BinaryMessageDecoder<>(GenericData.get(), reader, store);
        for (Path path : sorted(directory.resolve("payloads"), "*.bin")) {
            GenericRecord record = (GenericRecord) decoder.decode(Files.readAllBytes(path));
            GenericRecord header = (GenericRecord) record.get("header");
            System.out.println(String.join("\t",
                path.getFileName().toString(),
                record.getSchema().getFullName(),
                header.get("event_id").toString(),
                header.get("employer_key").toString(),
                header.get("entity_id").toString(),
                header.get("revision").toString(),
                salaryOf(record)));
        }
    }
}
