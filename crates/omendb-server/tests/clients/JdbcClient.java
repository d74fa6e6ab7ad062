// pgjdbc against a running OmenDB: DatabaseMetaData (schemas, tables,
// columns, primary keys, indexes), prepared statements with parameters,
// result metadata, transactions. Usage:
//   java -cp /usr/share/java/postgresql.jar JdbcClient.java PORT
// Prints "ok"; exits non-zero on the first failed check.

import java.sql.*;
import java.util.*;

public class JdbcClient {
    static void check(Object got, Object want, String what) {
        if (!Objects.equals(got, want)) {
            System.err.println(what + ": got " + got + ", want " + want);
            System.exit(1);
        }
    }

    static List<String> column(ResultSet rs, String name) throws SQLException {
        List<String> values = new ArrayList<>();
        while (rs.next()) values.add(rs.getString(name));
        return values;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/omendb";
        try (Connection conn = DriverManager.getConnection(url, "omendb", "")) {
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), code varchar(8) UNIQUE)");
            }
            DatabaseMetaData meta = conn.getMetaData();
            check(meta.getDatabaseProductName(), "PostgreSQL", "product name");
            check(column(meta.getTables(null, "public", "%", new String[] {"TABLE"}), "TABLE_NAME"),
                  List.of("items"), "tables");
            check(column(meta.getSchemas(), "TABLE_SCHEM").contains("public"), true, "schemas");
            ResultSet cols = meta.getColumns(null, "public", "items", "%");
            List<String> described = new ArrayList<>();
            while (cols.next()) {
                described.add(cols.getString("COLUMN_NAME") + " " + cols.getString("TYPE_NAME") + " "
                        + cols.getInt("DATA_TYPE") + " " + cols.getString("IS_NULLABLE"));
            }
            check(described, List.of("id int8 -5 NO", "name text 12 NO", "price numeric 2 YES",
                                     "code varchar 12 YES"), "columns");
            check(column(meta.getPrimaryKeys(null, "public", "items"), "COLUMN_NAME"), List.of("id"),
                  "primary key");
            check(column(meta.getIndexInfo(null, "public", "items", true, false), "INDEX_NAME"),
                  List.of("items_code_key", "items_pkey"), "unique indexes");

            conn.setAutoCommit(false);
            try (PreparedStatement insert = conn.prepareStatement(
                     "INSERT INTO items (id, name, price, code) VALUES (?, ?, ?, ?)")) {
                for (int i = 1; i <= 3; i++) {
                    insert.setLong(1, i);
                    insert.setString(2, "item " + i);
                    insert.setBigDecimal(3, new java.math.BigDecimal(i + ".50"));
                    insert.setString(4, "c" + i);
                    insert.executeUpdate();
                }
            }
            conn.commit();
            conn.setAutoCommit(true);
            try (PreparedStatement query = conn.prepareStatement(
                     "SELECT id, name, price FROM items WHERE id >= ? ORDER BY id")) {
                query.setLong(1, 2);
                for (int round = 0; round < 6; round++) { // pgjdbc switches to server-side prepare at 5
                    try (ResultSet rs = query.executeQuery()) {
                        ResultSetMetaData rsm = rs.getMetaData();
                        check(rsm.getColumnTypeName(3), "numeric", "result type");
                        List<String> rows = new ArrayList<>();
                        while (rs.next()) rows.add(rs.getLong(1) + " " + rs.getString(2) + " " + rs.getBigDecimal(3));
                        check(rows, List.of("2 item 2 2.50", "3 item 3 3.50"), "rows, round " + round);
                    }
                }
            }
            try (Statement st = conn.createStatement()) {
                st.execute("SELECT * FROM nope");
                check("no error", "42P01", "error");
            } catch (SQLException e) {
                check(e.getSQLState(), "42P01", "error state");
            }
        }
        System.out.println("ok");
    }
}
