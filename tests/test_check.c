/* test_check.c — the check macros themselves: each one must count a failure when its condition
 * does not hold (a NaN or infinity in a compared tensor included) and none when it does, or every
 * other test could pass by accident. Each case runs a macro, reads check_failures_ and resets
 * it; the verdicts are counted separately (`wrong`), so a macro that misses a failure makes this
 * test return non-zero. The macros print their messages to stderr as they would in a test. */
#include <math.h>
#include <stdio.h>

#include "check.h"

static int wrong;

/* Expects `failures` new failures from the macro just run; resets the count. */
static void expect(int failures, const char *what) {
    if (check_failures_ != failures) {
        fprintf(stderr, "test_check: %s: %d failure(s) counted, expected %d\n", what,
                check_failures_, failures);
        wrong++;
    }
    check_failures_ = 0;
}

static void test_close(void) {
    float ref[4] = {1.0f, -2.0f, 3.0f, 0.5f};
    float same[4] = {1.0f, -2.0f, 3.0f, 0.5f};
    float off[4] = {1.0f, -2.0f, 3.1f, 0.5f};
    float nan_at_2[4] = {1.0f, -2.0f, NAN, 0.5f};
    float all_nan[4] = {NAN, NAN, NAN, NAN};
    float inf_at_3[4] = {1.0f, -2.0f, 3.0f, INFINITY};
    float neg_inf_at_0[4] = {-INFINITY, -2.0f, 3.0f, 0.5f};

    fprintf(stderr, "test_check: the messages below are expected\n");
    CHECK_CLOSE(same, ref, 4, 1e-6);
    expect(0, "CHECK_CLOSE of equal tensors");
    CHECK_CLOSE(off, ref, 4, 1e-6);
    expect(1, "CHECK_CLOSE beyond the tolerance");
    CHECK_CLOSE(off, ref, 4, 0.1);
    expect(0, "CHECK_CLOSE within a loose tolerance");
    CHECK_CLOSE(nan_at_2, ref, 4, 1e-6);
    expect(1, "CHECK_CLOSE with a NaN in the result");
    CHECK_CLOSE(all_nan, ref, 4, 1e30);
    expect(1, "CHECK_CLOSE with a result of NaNs only");
    CHECK_CLOSE(inf_at_3, ref, 4, 1e30);
    expect(1, "CHECK_CLOSE with +inf in the result");
    CHECK_CLOSE(neg_inf_at_0, ref, 4, 1e30);
    expect(1, "CHECK_CLOSE with -inf in the result");
    CHECK_CLOSE(ref, nan_at_2, 4, 1e30);
    expect(1, "CHECK_CLOSE with a NaN in the reference");

    /* the helpers the tests call directly must not hide a NaN either */
    if (!(check_rel_err(nan_at_2, ref, 4) > 1e30)) {
        fprintf(stderr, "test_check: check_rel_err passes a NaN (%g)\n",
                check_rel_err(nan_at_2, ref, 4));
        wrong++;
    }
    int in_b = -1;
    if (check_first_nonfinite(nan_at_2, ref, 4, &in_b) != 2 || in_b != 0) {
        fprintf(stderr, "test_check: check_first_nonfinite does not find a[2]\n");
        wrong++;
    }
    if (check_first_nonfinite(ref, inf_at_3, 4, &in_b) != 3 || in_b != 1) {
        fprintf(stderr, "test_check: check_first_nonfinite does not find b[3]\n");
        wrong++;
    }
}

static void test_scalars(void) {
    CHECK(1 + 1 == 2);
    expect(0, "CHECK of a true condition");
    CHECK(1 + 1 == 3);
    expect(1, "CHECK of a false condition");
    CHECK_EQ_INT(7, 7);
    expect(0, "CHECK_EQ_INT of equal values");
    CHECK_EQ_INT(7, 8);
    expect(1, "CHECK_EQ_INT of different values");
    CHECK_NEAR(1.0, 1.0 + 1e-9, 1e-6, 1e-12);
    expect(0, "CHECK_NEAR within tolerance");
    CHECK_NEAR(1.0, 1.1, 1e-6, 1e-12);
    expect(1, "CHECK_NEAR beyond tolerance");
    CHECK_NEAR(NAN, 1.0, 1e-6, 1e-12);
    expect(1, "CHECK_NEAR of a NaN");
    CHECK_NEAR(INFINITY, INFINITY, 1e-6, 1e-12);
    expect(1, "CHECK_NEAR of two infinities");
    CHECK_EQ_STR("abc", "abc");
    expect(0, "CHECK_EQ_STR of equal strings");
    CHECK_EQ_STR("abc", "abd");
    expect(1, "CHECK_EQ_STR of different strings");
    CHECK_CONTAINS("hay with a needle", "needle");
    expect(0, "CHECK_CONTAINS of a present needle");
    CHECK_CONTAINS("hay only", "needle");
    expect(1, "CHECK_CONTAINS of a missing needle");
}

int main(void) {
    test_close();
    test_scalars();
    /* CHECK_RESULT reports failures it counted: one more, so it must say 1 */
    CHECK(0);
    if (CHECK_RESULT() != 1) {
        fprintf(stderr, "test_check: CHECK_RESULT does not report a counted failure\n");
        wrong++;
    }
    check_failures_ = 0;
    if (wrong) {
        fprintf(stderr, "test_check: %d check macro case(s) wrong\n", wrong);
        return 1;
    }
    return CHECK_RESULT();
}
